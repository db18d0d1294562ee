#!/usr/bin/env python3
"""The facts pipeline at lab scale, beside its floor: N synthetic findings (default 100k over 10k
keys) in a real SQLite store and a copy of this repo's facts/.

    python scripts/bench_facts.py [--findings 100000] [--keys 10000] [--json]

Measured, each in a fresh process (so peak RSS is that step's own):
  floor      read every finding's body from the store and JSON-parse it (nothing else)
  validate   read every body and validate it as a Finding, as every reader does (a bad stored
             row is reported, never trusted): the part of a pass no streaming removes
  checked    validate, and check every citation (quote in the cited file and holding the value,
             run result on registered hardware): the two steps a pass cannot skip
  reconcile  `facts.run` as the main job runs it: merge the log, read and validate the
             findings, check every citation (quoted logs, runs in the store), reconcile, write
             facts/ and the triage cache; then once more, as every later pass runs (the log
             written by the first is read, its lines the store holds skipped)
  triage     `swarm triage list --json` and one `swarm triage resolve` through the CLI
Targets (issue #16): reconcile <= 5x the floor and <= 300 MB peak RSS; triage list and one
resolve <= 0.5 s each. Each step's CPU time (user + system, from the kernel's accounting of
the child) is printed beside its wall time: on a shared machine the wall clock measures the
neighbours too, and the ratio to the floor is given for both. The findings mix agreeing and disagreeing measurements, aliases,
implausible values, quoted documents and runs on registered hardware, so every rule runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GPUS = ("RTX Pro 6000", "DGX Spark", "RTX 4090")


def synthetic(n: int, keys: int, seed: int = 7) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Finding bodies as agents send them (NewFinding fields), and the documents they quote:
    a run result per run citation, a benchmark log per 20 keys (the line with the value)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    docs: dict[str, list[str]] = {}
    for i in range(n):
        k = rng.randrange(keys)
        base = 20 + (k % 400) / 10
        if k % 50 == 0:  # a key built to disagree: two clusters
            base *= 1.0 if rng.random() < 0.5 else 1.6
        value = round(base * (1 + rng.uniform(-0.03, 0.03)), 1)
        if rng.random() < 0.002:
            value = round(base * 40, 1)  # physically implausible
        agent = 3 * rng.randrange(7) + k % 3  # an agent on a host with this key's GPU
        if rng.random() < 0.3:
            evidence = {"kind": "run", "locator": f"res-{i}", "metric": "single_tps"}
        else:
            path = f"facts/evidence/bench/log-{k // 20}.txt"
            line = f"model-{k} run {i}: {value} tokens/s single stream"
            docs.setdefault(path, []).append(line)
            evidence = {"kind": "doc", "locator": path, "quote": {"exact": line}}
        out.append(
            {
                "agent": f"agent{agent}",
                "body": {
                    "subject": f"model-{k}",
                    "predicate": "decode_tps_single_stream",
                    "scope": {
                        "gpu": GPUS[k % 3],
                        "platform": rng.choice(("trt-llm", "TensorRT-LLM", "trtllm"))
                        if k % 2
                        else "vllm",
                        "quant": "NVFP4",
                        "tp": rng.choice((1, "1")),
                    },
                    "value": value,
                    "unit": "tokens/s",
                    "statement": f"model-{k} decodes at {value} tokens/s",
                    "evidence": [evidence],
                    "attributes": {"params": f"{1 + k % 3}B"},
                },
            }
        )
    return out, {path: "\n".join(lines) + "\n" for path, lines in docs.items()}


def build(root: Path, n: int, keys: int) -> tuple[Path, Path]:
    """A repo copy with the registries and the documents, and a store holding N findings."""
    from datetime import UTC, datetime

    from swarm.db.store import Conn, SqliteStore
    from swarm.facts.findings import NewFinding, insert_findings

    repo = root / "repo"
    (repo / "facts" / "evidence" / "bench").mkdir(parents=True)
    for name in ("aliases.toml", "predicates.toml", "hardware.toml", "scope.toml"):
        shutil.copy(REPO / "facts" / name, repo / "facts" / name)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    items, docs = synthetic(n, keys)
    for path, text in docs.items():
        (repo / path).write_text(text)
    db = root / "lab.db"
    store = SqliteStore(db)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    at = "2026-11-01T00:00:00.000000Z"
    agents = sorted({item["agent"] for item in items})
    caps = {
        a: json.dumps(
            {
                "host": f"host-{a}",
                "gpus": [
                    {
                        "index": 0,
                        "name": GPUS[int(a[5:]) % 3],
                        "uuid": f"GPU-{a}",
                        "memory_total_gb": 96,
                    }
                ],
                "tools": [],
            }
        )
        for a in agents
    }
    results = [
        (
            ev["locator"],
            f"task-{ev['locator']}",
            1,
            item["agent"],
            "done",
            json.dumps({"single_tps": item["body"]["value"]}),
            None,
            "k",
            at,
        )
        for item in items
        for ev in item["body"]["evidence"]
        if ev["kind"] == "run"
    ]

    def seed(conn: Conn) -> None:
        conn.executemany(
            "INSERT INTO agents VALUES (?,?,?,?)", [(a, caps[a], at, at) for a in agents]
        )
        conn.executemany(
            "INSERT INTO tasks (id, kind, title, spec, state, requires, created_at, updated_at) "
            "VALUES (?, 'benchmark', 't', '{}', 'done', '{}', ?, ?)",
            [(r[1], at, at) for r in results],
        )
        conn.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?)", results)
        by_agent: dict[str, list[NewFinding]] = {}
        for item in items:
            by_agent.setdefault(item["agent"], []).append(NewFinding.model_validate(item["body"]))
        for agent, found in sorted(by_agent.items()):
            insert_findings(conn, found, agent, now)

    store.write(seed)
    return repo, db


# Each probe prints its own peak RSS last (VmHWM: per address space, so it starts afresh at exec
# and never counts the parent this process was forked from).
HWM = """
print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')))
"""
PROBES = {
    "floor": """
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
n = sum(1 for (body,) in conn.execute("SELECT body FROM findings") if json.loads(body))
print(n)
""",
    "validate": """
import sqlite3, sys
from swarm.facts.findings import Finding
from swarm.core.limits import STORED
conn = sqlite3.connect(sys.argv[1])
rows = conn.execute("SELECT body FROM findings")
print(sum(1 for (body,) in rows if Finding.model_validate_json(body, context=STORED)))
""",
    "checked": """
import sys
from pathlib import Path
from swarm.lab import pipeline as facts
from swarm.facts.findings import iter_findings
from swarm.facts.registry import Registries
from swarm.db.store import SqliteStore
import gc
gc.disable()  # as facts.run does for its pass
store, repo = SqliteStore(Path(sys.argv[1])), Path(sys.argv[2])
_, runs = facts.all_runs(store, repo)
checker = facts.Checker(facts.context(repo, runs, Registries.load(repo / "facts")))
for finding in iter_findings(store, []):
    checker.add(finding)
print(len(checker.checks))
""",
    "reconcile": """
import sys
from pathlib import Path
from swarm.lab import pipeline as facts
from swarm.db.store import SqliteStore
db = Path(sys.argv[1])  # the cache where `swarm work`'s pass leaves it: the lab dir
out = facts.run(SqliteStore(db), Path(sys.argv[2]), cache=db.parent / "facts-cache")
print(len(out.facts.facts), len(out.facts.conflicts))
""",
}


# The decider of the triage step: the CLI names the person git names (no --by to declare one).
PERSON = {"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "user.name", "GIT_CONFIG_VALUE_0": "bench",
          "GIT_CONFIG_KEY_1": "user.email", "GIT_CONFIG_VALUE_1": "bench@lab"}  # fmt: skip


class Took:
    """A fresh process's wall and CPU seconds (user + system), its peak RSS and its output."""

    def __init__(self, wall: float, cpu: float, out: str, mb: float = 0.0) -> None:
        self.wall, self.cpu, self.out, self.mb = wall, cpu, out, mb

    def over(self, floor: Took) -> str:
        return f"{self.wall / floor.wall:.1f}x / {self.cpu / floor.cpu:.1f}x"


def timed(args: list[str], env: dict[str, str], cwd: Path | None = None) -> Took:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{args[:4]} failed: {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Took(elapsed, cpu, proc.stdout)


def probe(name: str, env: dict[str, str], *argv: str) -> Took:
    """A probe's run, with its own peak RSS in MB (its output less the RSS line)."""
    took = timed([sys.executable, "-c", PROBES[name] + HWM, *argv], env)
    *lines, hwm = took.out.strip().splitlines()
    took.out, took.mb = "\n".join(lines), int(hwm) / 1024
    return took


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--build", help=argparse.SUPPRESS)  # internal: build into this folder
    args = parser.parse_args()
    if args.build:
        build(Path(args.build), args.findings, args.keys)
        return
    root = Path(tempfile.mkdtemp(prefix="bench-facts-"))
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        # built by a child process, so this one stays small
        timed([sys.executable, __file__, "--build", str(root), "--findings", str(args.findings),
               "--keys", str(args.keys)], env)  # fmt: skip
        repo, db = root / "repo", root / "lab.db"
        env["SWARM_DB"] = str(db)
        py = sys.executable
        floor = probe("floor", env, str(db))
        valid = probe("validate", env, str(db))
        checked = probe("checked", env, str(db), str(repo))
        rec = probe("reconcile", env, str(db), str(repo))
        # every later pass: the log is there (each line read, the held ones skipped)
        steady = probe("reconcile", env, str(db), str(repo))
        cli = [py, "-m", "swarm.cli"]
        listed = timed([*cli, "triage", "list", "--json"], env, cwd=repo)
        conflicts = json.loads(listed.out)["conflicts"]
        target = next(c for c in conflicts if len(c["sides"]) > 1)
        accept = target["sides"][0]["findings"][0]
        resolved = timed(
            [*cli, "triage", "resolve", target["id"], "--accept", accept, "--reason",
             "bench: the first side", "--json"], env | PERSON, cwd=repo,
        )  # fmt: skip
        again = timed([*cli, "triage", "list", "--json"], env, cwd=repo)
        keys, n_conflicts = (int(x) for x in rec.out.split())
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def step(took: Took) -> dict[str, float]:
        out = {"wall_s": round(took.wall, 2), "cpu_s": round(took.cpu, 2)}
        if took.mb:
            out["peak_rss_mb"] = round(took.mb)
        if took is not floor and took.mb:
            out["wall_over_floor"] = round(took.wall / floor.wall, 1)
            out["cpu_over_floor"] = round(took.cpu / floor.cpu, 1)
        return out

    report = {
        "schema_version": 2,
        "findings": args.findings,
        "facts": keys,
        "conflicts": n_conflicts,
        "floor_read_parse": step(floor),
        "validate": step(valid),
        "validate_and_check": step(checked),
        "reconcile": step(rec),
        "reconcile_again": step(steady),
        "triage_list": step(listed),
        "triage_resolve": step(resolved),
        "triage_list_after_resolve": step(again),
        "targets": {"over_floor": 5, "rss_mb": 300, "triage_s": 0.5},
        "environment": {
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    rows = [
        ("floor: read + JSON-parse every finding", floor, "1x", "-"),
        ("floor + validate each as a Finding", valid, valid.over(floor), "-"),
        ("... + check every citation", checked, checked.over(floor), "-"),
        ("facts.run (check, reconcile, write)", rec, rec.over(floor), "<= 5x floor, <= 300 MB"),
        ("facts.run again (the log written)", steady, steady.over(floor), "<= 5x floor, <= 300 MB"),
        ("swarm triage list", listed, "", "<= 0.5 s"),
        ("swarm triage resolve (one)", resolved, "", "<= 0.5 s"),
        ("swarm triage list, after it", again, "", "<= 0.5 s"),
    ]
    print(f"{args.findings} findings -> {keys} facts, {n_conflicts} conflicts")
    width = max(len(r[0]) for r in rows)
    print(
        f"{'step':<{width}}  {'wall':>8} {'cpu':>8}  {'x floor (wall/cpu)':<19} {'peak RSS':>8}   target"
    )
    for name, took, ratio, goal in rows:
        mem = f"{took.mb:.0f} MB" if took.mb else "-"
        print(
            f"{name:<{width}}  {took.wall:>6.2f} s {took.cpu:>6.2f} s  {ratio:<19} {mem:>8}   {goal}"
        )
    print(f"environment: {report['environment']}")


if __name__ == "__main__":
    main()
