#!/usr/bin/env python3
"""Where one worker's claim -> report cycle spends its time, statement by statement.

    python scripts/profile_cycle.py [--cycles 3000]

One process, a fresh SQLite lab: it times every statement the store runs (COMMIT included)
and reports the mean per cycle beside the whole cycle, so the rest is Python. In the same run
it times bare's whole cycle (scripts/bench_queue.py: one autocommit claim, one autocommit done),
the floor the queue benchmark compares with. Statement time is what any implementation of the
same SQL pays, however little Python it ran.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_queue import setup_bare, worker_bare  # beside this script
from benchenv import seed_tasks


class TimedConnection:
    """The store's connection, timing each execute by its statement's first words."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect  # type: ignore[attr-defined]
        self.spent: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        start = time.perf_counter_ns()
        cursor = self.conn.execute(sql, params)
        key = " ".join(sql.split())[:70]
        self.spent[key] += time.perf_counter_ns() - start
        self.calls[key] += 1
        return cursor


def swarm_cycles(db: Path, cycles: int) -> tuple[float, TimedConnection]:
    from swarm.core.models import Capabilities
    from swarm.db.store import SqliteStore
    from swarm.queue import agents, queue

    seed_tasks(db, cycles + 500)
    store = SqliteStore(db)
    agents.register(store, "w", Capabilities(host="bench"), datetime.now(UTC))

    def run(n: int) -> None:
        for _ in range(n):
            c = queue.claim(store, "w", datetime.now(UTC), 600.0)
            queue.report(store, c.task.id, c.lease.epoch, "done", datetime.now(UTC), {"by": "w"})

    run(500)  # warm: statement cache, validators, pages
    timed = TimedConnection(store.conn)
    store.conn = timed  # type: ignore[assignment]
    start = time.perf_counter()
    run(cycles)
    return (time.perf_counter() - start) / cycles, timed


def bare_cycle(db: Path, cycles: int) -> float:
    setup_bare(str(db), cycles + 500)
    claim, finish, _ = worker_bare(str(db), "w")
    for _ in range(500):
        finish(claim())
    start = time.perf_counter()
    for _ in range(cycles):
        finish(claim())
    return (time.perf_counter() - start) / cycles


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=3000)
    cycles = parser.parse_args().cycles
    with tempfile.TemporaryDirectory(prefix="profile-cycle-") as tmp:
        whole, timed = swarm_cycles(Path(tmp) / "swarm.db", cycles)
        bare = bare_cycle(Path(tmp) / "bare.db", cycles)
    sql = sum(timed.spent.values()) / cycles
    print("us per cycle | calls per cycle | statement")
    print("--- | --- | ---")
    for key, spent in timed.spent.most_common():
        print(f"{spent / cycles / 1000:.1f} | {timed.calls[key] / cycles:.2f} | {key}")
    print(
        f"\nswarm cycle {whole * 1e6:.1f} us: statements {sql / 1000:.1f} us, Python "
        f"{whole * 1e6 - sql / 1000:.1f} us (timing adds a little to both)\n"
        f"bare cycle {bare * 1e6:.1f} us: swarm's statements alone are "
        f"{sql / 1000 / (bare * 1e6):.1f}x bare's whole cycle"
    )


if __name__ == "__main__":
    main()
