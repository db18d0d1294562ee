"""A worker process for the concurrency tests: claim -> (work, heartbeat) -> report, logged.

    python tests/queue_worker.py DB AGENT LOG LEASE_S WORK_MIN_S WORK_MAX_S [GPU_GB]

With GPU_GB, the agent registers one GPU of that size (the same GPU for every agent: one host).

Each line of LOG is one JSON event (claiming / claimed / reporting / reported / refused / error),
flushed at once so a SIGKILL loses nothing that happened before it: a log that ends in claiming
or reporting was killed during that write call. Exits when no pending or claimed task is left.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime

from swarm.core.errors import LeaseLost, NothingClaimable, SwarmError
from swarm.core.models import Capabilities, GpuInfo
from swarm.db.store import open_store
from swarm.queue import agents, queue


def main() -> None:
    db, agent, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
    lease, work_min, work_max = (float(v) for v in sys.argv[4:7])
    store = open_store(db)
    log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115  # line-buffered

    def emit(**event: object) -> None:
        log.write(json.dumps({"agent": agent, "t": time.time(), **event}) + "\n")

    gpus = ()
    if len(sys.argv) > 7:
        gb = float(sys.argv[7])
        gpus = (
            GpuInfo(index=0, name="RTX Pro 6000", uuid="GPU-0", arch="sm_120", memory_total_gb=gb),
        )
    agents.register(store, agent, Capabilities(host="test", gpus=gpus), datetime.now(UTC))
    while True:
        emit(event="claiming")  # a kill before the next line landed in (or around) a write
        try:
            claim = queue.claim(store, agent, datetime.now(UTC), lease)
        except NothingClaimable as exc:
            if "no pending tasks (0 claimed" in str(exc):
                return
            time.sleep(0.02)
            continue
        except SwarmError as exc:
            emit(event="error", op="claim", error=f"{type(exc).__name__}: {exc}")
            continue
        task, epoch = claim.task.id, claim.lease.epoch
        emit(event="claimed", task=task, epoch=epoch)
        try:
            deadline = time.monotonic() + random.uniform(work_min, work_max)
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, lease / 3))
                queue.heartbeat(store, task, epoch, datetime.now(UTC), lease)
            emit(event="reporting", task=task, epoch=epoch)
            queue.report(store, task, epoch, "done", datetime.now(UTC), {"by": agent})
            emit(event="reported", task=task, epoch=epoch)
        except LeaseLost as exc:
            emit(event="refused", task=task, epoch=epoch, error=str(exc))
        except SwarmError as exc:
            emit(event="error", op="report", task=task, error=f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
