#!/usr/bin/env python3
"""Queue throughput and claim latency under W worker processes, beside two baselines, one run.

    python scripts/bench_queue.py [--tasks N] [--workers 1,4,20,40] [--cli-runs N] [--json]
        [--backend sqlite|postgres|both] [--postgres URL]

Designs, each on a fresh SQLite file with the same pragmas (WAL, synchronous=NORMAL):
  swarm  claim -> report with the full semantics (leases, epochs, events, results, lazy reaping)
claims/s counts whole cycles (claim and its report); latencies are per call.
  bare   one autocommit `UPDATE … RETURNING` claim and one guarded `UPDATE` done: no leases,
         no events (the floor of a correct SQLite claim)
  huey   huey's SqliteStorage enqueue/dequeue (deletes on dequeue: no lease, no report)
With --backend postgres (or both), each on a fresh schema of the server at --postgres (default
$SWARM_TEST_POSTGRES; scripts/throwaway_postgres.sh starts one):
  swarm-pg  the same full cycle on the PostgreSQL store (a pool per worker process)
  bare-pg   one autocommit `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`
            claim and a guarded `UPDATE` done (the floor of a correct PostgreSQL claim)
Each worker counts double claims (a task id seen twice), lost tasks (never claimed) and errors
that escaped to the caller. Also times `swarm claim --json` as a process against three floors:
`python -c 'import sqlite3'` (any Python CLI), importing pydantic's BaseModel (any CLI whose
schema is pydantic models) and importing swarm's models. Prints a table; --json the report.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchenv import as_installed, seed_tasks  # noqa: E402  # beside this script

# ---------------------------------------------------------------- designs: setup + one worker


def worker_swarm(path: str, name: str) -> Any:
    from swarm.core.errors import NothingClaimable, SwarmError
    from swarm.core.models import Capabilities
    from swarm.db.store import open_store
    from swarm.queue import agents, queue

    store = open_store(path)
    agents.register(store, name, Capabilities(host="bench"), datetime.now(UTC))

    def claim() -> Any:
        try:
            return queue.claim(store, name, datetime.now(UTC), 600.0)
        except NothingClaimable:
            return None

    def finish(c: Any) -> str:
        queue.report(store, c.task.id, c.lease.epoch, "done", datetime.now(UTC), {"by": name})
        return str(c.task.id)

    return claim, finish, SwarmError


def _bare_conn(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def setup_bare(path: str, n: int) -> None:
    conn = _bare_conn(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, state TEXT NOT NULL, owner TEXT)")
    conn.execute("CREATE INDEX t_state ON t(state, id)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (id, state) VALUES (?, 'ready')", [(i,) for i in range(n)])
    conn.execute("COMMIT")
    conn.close()


def worker_bare(path: str, name: str) -> Any:
    conn = _bare_conn(path)

    def claim() -> Any:
        row = conn.execute(
            "UPDATE t SET state='claimed', owner=? WHERE id = "
            "(SELECT id FROM t WHERE state='ready' ORDER BY id LIMIT 1) RETURNING id",
            (name,),
        ).fetchone()
        return None if row is None else row[0]

    def finish(task_id: int) -> str:
        conn.execute("UPDATE t SET state='done' WHERE id=? AND owner=?", (task_id, name))
        return str(task_id)

    return claim, finish, sqlite3.OperationalError


def setup_huey(path: str, n: int) -> None:
    from huey.storage import SqliteStorage

    storage = SqliteStorage(name="bench", filename=str(path))
    for i in range(n):
        storage.enqueue(str(i).encode())
    storage.close()


def worker_huey(path: str, name: str) -> Any:
    from huey.storage import SqliteStorage

    storage = SqliteStorage(name="bench", filename=str(path))

    def claim() -> Any:
        return storage.dequeue()

    def finish(item: bytes) -> str:
        return item.decode()  # huey has no report: dequeue deleted the task

    return claim, finish, sqlite3.OperationalError


def setup_bare_pg(url: str, n: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, state TEXT NOT NULL, owner TEXT)")
        conn.execute("CREATE INDEX t_ready ON t(id) WHERE state = 'ready'")
        conn.execute(
            "INSERT INTO t (id, state) SELECT i, 'ready' FROM generate_series(0, %s - 1) i", (n,)
        )


def worker_bare_pg(url: str, name: str) -> Any:
    import psycopg

    conn = psycopg.connect(url, autocommit=True)

    def claim() -> Any:
        row = conn.execute(
            "UPDATE t SET state='claimed', owner=%s WHERE id = (SELECT id FROM t WHERE "
            "state='ready' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
            (name,),
        ).fetchone()
        return None if row is None else row[0]

    def finish(task_id: int) -> str:
        conn.execute("UPDATE t SET state='done' WHERE id=%s AND owner=%s", (task_id, name))
        return str(task_id)

    return claim, finish, psycopg.OperationalError


DESIGNS = {
    "swarm": (seed_tasks, worker_swarm),
    "bare": (setup_bare, worker_bare),
    "huey": (setup_huey, worker_huey),
    "swarm-pg": (seed_tasks, worker_swarm),
    "bare-pg": (setup_bare_pg, worker_bare_pg),
}
BACKENDS = {
    "sqlite": "swarm,bare,huey",
    "postgres": "swarm-pg,bare-pg",
    "both": "swarm,bare,huey,swarm-pg,bare-pg",
}
PEERS = {"swarm": "bare", "swarm-pg": "bare-pg"}  # each design's floor on its own backend


def fresh_location(design: str, workers: int, folder: Path, postgres: str | None) -> str:
    """A new SQLite file, or a new schema on the PostgreSQL server, for one measurement."""
    if not design.endswith("-pg"):
        return str(folder / f"{design}-{workers}.db")
    if not postgres:
        sys.exit("--backend postgres needs --postgres URL (or SWARM_TEST_POSTGRES)")
    import psycopg

    schema = f"bench_{design.replace('-', '_')}_{workers}_{os.getpid()}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.execute(f"CREATE SCHEMA {schema}")
    return f"{postgres}{'&' if '?' in postgres else '?'}options=-csearch_path%3D{schema}"


def postgres_version(url: str | None) -> str | None:
    import psycopg

    with psycopg.connect(url or "", autocommit=True) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


def drop_location(location: str, postgres: str | None) -> None:
    if postgres and location.startswith(postgres):
        import psycopg

        schema = location.rsplit("%3D", 1)[1]
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


# ---------------------------------------------------------------- the harness


def run_worker(design: str, path: str, name: str, barrier: Any, out: Any) -> None:
    claim, finish, retryable = DESIGNS[design][1](path, name)
    claimed: list[str] = []
    claim_lat: list[float] = []
    finish_lat: list[float] = []
    escaped = 0
    barrier.wait()
    while True:
        start = time.perf_counter()
        try:
            task = claim()
        except retryable:
            escaped += 1  # an error reached the caller; count it and go on
            continue
        if task is None:
            break
        mid = time.perf_counter()
        try:
            claimed.append(finish(task))
        except retryable:
            escaped += 1
            continue
        claim_lat.append(mid - start)
        finish_lat.append(time.perf_counter() - mid)
    out.put((claimed, claim_lat, finish_lat, escaped))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def measure(
    design: str, workers: int, n: int, folder: Path, postgres: str | None
) -> dict[str, Any]:
    path = fresh_location(design, workers, folder, postgres)
    DESIGNS[design][0](path, n)
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(workers + 1), ctx.Queue()
    procs = [
        ctx.Process(target=run_worker, args=(design, path, f"w{i}", barrier, out))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    reports = [out.get() for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    drop_location(path, postgres)
    seen = Counter(task for claimed, *_ in reports for task in claimed)
    claims = [lat for _, lats, _, _ in reports for lat in lats]
    finishes = [lat for _, _, lats, _ in reports for lat in lats]
    return {
        "design": design,
        "workers": workers,
        "tasks": n,
        "claims_per_s": round(sum(seen.values()) / wall, 1),
        "claim_p50_ms": round(percentile(claims, 0.50) * 1000, 3),
        "claim_p99_ms": round(percentile(claims, 0.99) * 1000, 3),
        "report_p99_ms": round(percentile(finishes, 0.99) * 1000, 3),
        "double": sum(c - 1 for c in seen.values() if c > 1),
        "lost": n - len(seen),
        "escaped": sum(r[3] for r in reports),
    }


def time_command(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    """Wall times of `runs` runs of argv; a run that fails stops the benchmark (a command that
    dies at import would otherwise look fast)."""
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return walls


def measure_cli(runs: int, folder: Path) -> dict[str, Any]:
    db = folder / "cli.db"
    seed_tasks(db, runs + 5)
    env = as_installed({**os.environ, "SWARM_DB": str(db), "SWARM_AGENT": "cli-bench"})
    swarm_bin = shutil.which("swarm")
    argv = (
        [swarm_bin, "claim", "--json"]
        if swarm_bin
        else [sys.executable, "-m", "swarm.cli", "claim", "--json"]
    )
    subprocess.run([*argv[:-2], "agent", "register", "--no-gpu"], env=env, capture_output=True)
    out: dict[str, Any] = {"runs": runs}
    # the floors under a claim: Python itself, then the schema library swarm's models are
    # built on, then those models, before any swarm code runs
    for name, code in CLI_FLOORS.items():
        walls = time_command([sys.executable, "-c", code], runs, env)
        out[f"{name}_p50_ms"] = round(statistics.median(walls) * 1000, 1)
    claim = time_command(argv, runs, env)
    out["swarm_claim_json_p50_ms"] = round(statistics.median(claim) * 1000, 1)
    out["swarm_claim_json_p90_ms"] = round(percentile(claim, 0.9) * 1000, 1)
    return out


CLI_FLOORS = {
    "python_import_sqlite3": "import sqlite3",
    "python_import_pydantic_basemodel": "from pydantic import BaseModel",
    "python_import_swarm_models": "import swarm.core.models",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--workers", default="1,4,20,40")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="sqlite")
    parser.add_argument("--designs", help="a comma list of designs (default: the backend's)")
    parser.add_argument("--postgres", default=os.environ.get("SWARM_TEST_POSTGRES"))
    parser.add_argument("--cli-runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    designs = (args.designs or BACKENDS[args.backend]).split(",")
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        for w in (int(x) for x in args.workers.split(",")):
            for design in designs:
                rows.append(measure(design, w, args.tasks, Path(tmp), args.postgres))
                if not args.json:
                    print(f"  measured {design} W={w}", file=sys.stderr)
        cli = measure_cli(args.cli_runs, Path(tmp)) if args.cli_runs else None
    by = {(r["design"], r["workers"]): r for r in rows}
    for r in rows:
        peer = PEERS.get(r["design"], r["design"])
        bare, huey = by.get((peer, r["workers"])), by.get(("huey", r["workers"]))
        r["vs_bare"] = round(r["claims_per_s"] / bare["claims_per_s"], 2) if bare else None
        r["vs_huey"] = round(r["claims_per_s"] / huey["claims_per_s"], 2) if huey else None
    report = {
        "schema_version": 1,
        "environment": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "load_avg_1m": os.getloadavg()[0],
            "postgres": postgres_version(args.postgres) if "pg" in ",".join(designs) else None,
        },
        "rows": rows,
        "cli": cli,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    cols = (
        "design",
        "workers",
        "claims_per_s",
        "claim_p50_ms",
        "claim_p99_ms",
        "report_p99_ms",
        "double",
        "lost",
        "escaped",
        "vs_bare",
        "vs_huey",
    )
    print(" | ".join(cols))
    print(" | ".join("---" for _ in cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    if cli:
        print(f"\nCLI, p50 of {cli['runs']} runs each:")
        for name, code in CLI_FLOORS.items():
            print(f"  python -c '{code}': {cli[name + '_p50_ms']} ms")
        print(
            f"  swarm claim --json: {cli['swarm_claim_json_p50_ms']} ms "
            f"(p90 {cli['swarm_claim_json_p90_ms']} ms)"
        )
    print(f"environment: {report['environment']}")


if __name__ == "__main__":
    main()
