"""Many OS processes on one lab database (each backend), ending in an audit of what the store and workers saw."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from swarm.core.models import NewTask
from swarm.db.store import Conn, Store, open_store
from swarm.queue import queue
from tests.conftest import REPO, T0

WORKER = REPO / "tests" / "queue_worker.py"
pytestmark = pytest.mark.slow


def seed(db: str, n: int, **fields: Any) -> list[str]:
    store = open_store(db)
    # Many attempts: these tests are about exactly-once under kills, not the give-up policy
    # (a task whose holders die max_attempts times ends failed, tested in test_queue.py).
    new = [NewTask(kind="other", title=f"t{i}", max_attempts=100, **fields) for i in range(n)]
    ids = [queue.add_task(store, task, T0).id for task in new]
    store.close()
    return ids


def thaw_due(workers: Mapping[str, subprocess.Popen[bytes]], thaw_at: dict[str, float]) -> None:
    """Resume (SIGCONT) each frozen worker whose thaw time has come."""
    for name, when in list(thaw_at.items()):
        if time.monotonic() >= when:
            workers[name].send_signal(signal.SIGCONT)
            del thaw_at[name]


def spawn(
    db: str, agent: str, logs: Path, lease: float, work: tuple[float, float], *gpu_gb: str
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [
        sys.executable,
        str(WORKER),
        db,
        agent,
        str(logs / f"{agent}.jsonl"),
        str(lease),
        str(work[0]),
        str(work[1]),
        *gpu_gb,
    ]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read_logs(logs: Path) -> list[dict[str, Any]]:
    events = []
    for path in logs.glob("*.jsonl"):
        events += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return events


Audit = tuple[Counter[str], dict[str, int], dict[str, tuple[int, str]]]


def store_audit(db: str) -> Audit:
    def read(conn: Conn) -> Audit:
        states = Counter(r[0] for r in conn.execute("SELECT state FROM tasks"))
        results = {
            r[0]: r[1]
            for r in conn.execute("SELECT task_id, count(*) FROM results GROUP BY task_id")
        }
        final = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT t.id, t.epoch, r.agent FROM tasks t JOIN results r ON r.task_id = t.id"
            )
        }
        return states, results, final

    store = open_store(db)
    try:
        return store.read(read)
    finally:
        store.close()


def test_twenty_processes_claim_every_task_exactly_once_and_lose_no_report(
    tmp_path: Path, db: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    ids = seed(db, 600)
    workers = [spawn(db, f"w{i}", logs, 120.0, (0.0, 0.0)) for i in range(20)]
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err.decode()
    events = read_logs(logs)
    claims = Counter(e["task"] for e in events if e["event"] == "claimed")
    assert [e for e in events if e["event"] in ("error", "refused")] == []
    assert sorted(claims) == sorted(ids) and set(claims.values()) == {1}
    assert len([e for e in events if e["event"] == "reported"]) == 600
    states, results, _ = store_audit(db)
    assert states == {"done": 600}
    assert set(results.values()) == {1} and len(results) == 600
    assert len({e["agent"] for e in events}) > 1  # the work really was spread over processes


def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _epoch(store: Store, task: str) -> int:
    return int(
        store.read(lambda c: c.execute("SELECT epoch FROM tasks WHERE id = ?", (task,)).fetchone())[
            0
        ]
    )


def test_a_worker_that_wakes_after_its_lease_was_reclaimed_is_refused(
    tmp_path: Path, db: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (task,) = seed(db, 1)
    zombie = spawn(db, "zombie", logs, 0.5, (1.5, 1.5))
    _wait_for(lambda: any(e["event"] == "claimed" for e in read_logs(logs)))
    zombie.send_signal(signal.SIGSTOP)  # frozen mid-task: no heartbeats
    time.sleep(0.7)
    rescuer = spawn(db, "rescuer", logs, 30.0, (0.0, 0.0))
    store = open_store(db)
    _wait_for(lambda: _epoch(store, task) == 2)
    store.close()
    zombie.send_signal(signal.SIGCONT)
    rescuer.communicate(timeout=30)
    zombie.communicate(timeout=30)
    events = read_logs(logs)
    refused = [e for e in events if e["event"] == "refused"]
    assert [(e["agent"], e["epoch"]) for e in refused] == [("zombie", 1)]
    assert "now at epoch 2" in refused[0]["error"]
    _, results, final = store_audit(db)
    assert results == {task: 1} and final[task] == (2, "rescuer")


def test_chaos_killed_and_frozen_workers_still_finish_every_task_exactly_once(
    tmp_path: Path, db: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    ids = seed(db, 200)
    lease, work = 0.6, (0.05, 0.3)
    rng = random.Random(7)
    workers = {f"w{i}": spawn(db, f"w{i}", logs, lease, work) for i in range(6)}
    thaw_at: dict[str, float] = {}
    killed = frozen = 0
    deadline = time.monotonic() + 120
    for step in itertools.count():
        thaw_due(workers, thaw_at)
        if all(w.poll() is not None for w in workers.values()):
            break
        assert time.monotonic() < deadline, "chaos run did not finish"
        time.sleep(0.1)
        name = rng.choice(sorted(set(workers) - set(thaw_at)))
        if workers[name].poll() is not None:
            continue
        if step % 2 == 0 and killed < 12:
            workers[name].send_signal(signal.SIGKILL)  # dies mid-task: its lease must expire
            workers[name].wait()
            workers[f"{name}.{step}"] = spawn(db, f"{name}.{step}", logs, lease, work)
            killed += 1
        elif step % 2 == 1 and frozen < 12:
            workers[name].send_signal(signal.SIGSTOP)  # a zombie: wakes after its lease expired
            thaw_at[name] = time.monotonic() + lease * 2.5
            frozen += 1
    events = read_logs(logs)
    assert [e for e in events if e["event"] == "error"] == []
    states, results, final = store_audit(db)
    assert states == {"done": 200}, "every task ends done"
    assert sorted(results) == sorted(ids) and set(results.values()) == {1}, (
        "exactly one result each"
    )
    claims = Counter((e["task"], e["epoch"]) for e in events if e["event"] == "claimed")
    assert set(claims.values()) == {1}, "no (task, epoch) was ever handed to two workers"
    accepted = {(e["task"], e["epoch"]) for e in events if e["event"] == "reported"}
    last_leases = {(task, epoch) for task, (epoch, _) in final.items()}
    assert accepted <= last_leases, "only the last lease reports"
    # A worker SIGKILLed after its report committed but before it logged "reported" ends its
    # log with "reporting": that report stands, unconfirmed (a retry would find it).
    last = {e["agent"]: e for e in sorted(events, key=lambda e: e["t"])}
    cut = {(e["task"], e["epoch"]) for e in last.values() if e["event"] == "reporting"}
    assert last_leases - accepted <= cut, "every other last lease's report was confirmed"
    refused = [e for e in events if e["event"] == "refused"]
    assert all(e["epoch"] < final[e["task"]][0] for e in refused), "refused: superseded leases only"
    assert killed == 12 and frozen == 12
    assert max(epoch for epoch, _ in final.values()) > 1, "some task really was reclaimed"


def test_concurrent_claims_on_one_host_never_overcommit_its_gpu(tmp_path: Path, db: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    seed(db, 60, requires={"gpu_mem_gb": 40})  # 96 GB: two at a time fit, never three
    workers = [spawn(db, f"w{i}", logs, 30.0, (0.01, 0.04), "96") for i in range(8)]
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err.decode()

    def replay(conn: Conn) -> list[float]:
        """GB leased after each event, in the order the store numbered them."""
        leased, held, totals = {}, 0.0, []
        for task, action in conn.execute("SELECT task_id, action FROM events ORDER BY seq"):
            if action == "claimed":
                leased[task] = 40.0
            elif action.startswith(("reported", "released", "expired")):
                leased.pop(task, None)
            held = sum(leased.values())
            totals.append(held)
        return totals

    store = open_store(db)
    totals = store.read(replay)
    assert max(totals) == 80.0  # two shares at once happened, a third never did
    states, results, _ = store_audit(db)
    assert states == {"done": 60} and set(results.values()) == {1}
