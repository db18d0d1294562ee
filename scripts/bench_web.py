#!/usr/bin/env python3
"""The web page's requests, timed: p50/p95/max per page over the seed lab plus N synthetic
findings (default 100k), served by a real `swarm serve --http` on loopback.

    python scripts/bench_web.py [--findings 100000] [--requests 40] [--db URL] [--json]

Each page is fetched once to warm up (the first conflicts/facts view reconciles every finding,
timed on its own line), then --requests times over one kept-alive connection, as a browser
does. The floor beside them is the same server answering a static file (routing, the session
check, HTTP), so a page's cost above it is its own work. Target: p95 under 100 ms per page.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_facts import synthetic  # noqa: E402

from swarm.core.models import Capabilities, GpuInfo, NewTask, Requires  # noqa: E402
from swarm.db.store import open_store  # noqa: E402
from swarm.facts.findings import NewFinding, add_findings  # noqa: E402
from swarm.lab import pipeline as facts  # noqa: E402
from swarm.lab.seed import seed_findings  # noqa: E402
from swarm.queue import queue  # noqa: E402
from swarm.queue.catalog import load_catalog  # noqa: E402

TARGET_MS = 100.0


def build(path: Path, db: str, n: int) -> dict[str, str]:
    """The seed lab, agents holding GPU shares, a failed task, and n synthetic findings."""
    from swarm.queue import agents

    for folder in ("facts", "tasks"):
        shutil.copytree(REPO / folder, path / folder)
    for generated in (facts.LOG, facts.FACTS, facts.RUNS):
        (path / "facts" / generated).unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    now = datetime.now(UTC)
    store = open_store(db)
    load_catalog(store, path / "tasks", now)
    add_findings(store, seed_findings(path), "seed", now)
    pro = GpuInfo(index=0, name="RTX Pro 6000", uuid="GPU-pro", arch="sm_120", memory_total_gb=96)
    for i in range(20):
        agents.register(store, f"agent{i}", Capabilities(host="pro6000", gpus=(pro,)), now)
    for i in range(4):
        task = NewTask(kind="other", title=f"share {i}", requires=Requires(gpu_mem_gb=20))
        queue.claim(store, f"agent{i}", now, 3600, task_id=queue.add_task(store, task, now).id)
    failed = queue.add_task(store, NewTask(kind="other", title="MoE probe"), now).id
    lease = queue.claim(store, "agent5", now, 600, task_id=failed).lease
    queue.report(store, failed, lease.epoch, "failed", now, {}, "triton SMEM overflow")
    started = time.perf_counter()
    items, docs = synthetic(n, max(1, n // 10))  # bench_facts' findings and the logs they quote
    for rel, text in docs.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text, encoding="utf-8")
    by_agent: dict[str, list[NewFinding]] = {}
    for item in items:
        by_agent.setdefault(item["agent"], []).append(NewFinding.model_validate(item["body"]))
    some = ""
    for agent, found in sorted(by_agent.items()):
        for i in range(0, len(found), 5000):
            added = add_findings(store, found[i : i + 5000], agent, now)
            some = some or added[0].id
    loaded_s = time.perf_counter() - started
    held = store.read(lambda c: c.execute("SELECT count(*) FROM findings").fetchone()[0])
    if held < n:
        raise SystemExit(f"the lab holds {held} findings, not the {n} asked for")
    store.close()
    return {"task": failed, "finding": some, "load_s": f"{loaded_s:.1f}"}


def serve(path: Path, db: str) -> tuple[subprocess.Popen[bytes], int, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "SWARM_DB": db, "SWARM_LAB_DIR": str(path / "labdir"),
           "PYTHONPATH": str(REPO)}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarm.cli", "serve", "--http", "--port", str(port)],
        cwd=path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("swarm serve did not start") from None
            time.sleep(0.1)
    return proc, port, (path / "labdir" / "http_token").read_text().strip()


def fetch(conn: http.client.HTTPConnection, path: str, token: str) -> float:
    """One GET over the kept-alive connection: milliseconds until the whole body is read."""
    start = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "text/html"})
    response = conn.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - start) * 1000
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
    return elapsed


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--db", help="a postgresql:// URL of an empty database (default: SQLite)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="swarm-bench-web-"))
    db = args.db or str(folder / "lab.db")
    ids = build(folder, db, args.findings)
    proc, port, token = serve(folder, db)
    pages = {
        "static file (floor)": "/static/app.css",
        "board": "/",
        "board refresh": "/board",
        "conflicts": "/conflicts",
        "facts": "/facts",
        "facts, filtered": "/facts?gpu=DGX+Spark&status=verified",
        "finding": f"/findings/{ids['finding']}",
        "task": f"/tasks/{ids['task']}",
        "search": "/search?q=SMEM+overflow",
    }
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        first_ms = fetch(conn, "/conflicts", token)  # the first reconcile of every finding
        rows = []
        for name, path in pages.items():
            fetch(conn, path, token)
            samples = [fetch(conn, path, token) for _ in range(args.requests)]
            rows.append({"page": name, "path": path, "p50_ms": round(statistics.median(samples), 1),
                         "p95_ms": round(pct(samples, 95), 1), "max_ms": round(max(samples), 1)})  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    report = {
        "schema_version": 1,
        "findings": args.findings,
        "backend": "postgresql" if args.db else "sqlite",
        "requests_per_page": args.requests,
        "first_conflicts_view_ms": round(first_ms, 1),
        "synthetic_load_s": float(ids["load_s"]),
        "pages": rows,
        "target_p95_ms": TARGET_MS,
        "environment": {
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.findings} synthetic findings + the seed lab ({report['backend']}); "
          f"{args.requests} requests per page over one connection")  # fmt: skip
    print(
        f"first conflicts view (reconciles every finding): {report['first_conflicts_view_ms']:.0f} ms"
    )
    print(f"{'page':<22}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  target p95 < {TARGET_MS:.0f} ms")
    for r in rows:
        flag = "" if r["p95_ms"] < TARGET_MS else "  over"
        print(f"{r['page']:<22}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['max_ms']:>9}{flag}")
    print(f"environment: {report['environment']}")


if __name__ == "__main__":
    main()
