"""The built-in worker: claim -> run the task as a detached job -> heartbeat -> report.

A worker never runs work inside a transaction or inside its own process: each task is a job
(swarm/queue/jobs.py) whose folder outlives the worker. On a stop signal the worker releases its lease
with a note and leaves the job running; the next claim of that task adopts the job's result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from swarm.core.errors import LeaseLost, NothingClaimable
from swarm.core.models import Claim, Model
from swarm.db.store import Store
from swarm.queue import jobs, queue

Emit = Callable[[str], None]
Progress = Callable[[str, float], None]  # (task id, seconds it has run)


@dataclass(frozen=True)
class WorkerConfig:
    agent: str
    kinds: tuple[str, ...]
    repo: Path
    lab_dir: Path
    db: str
    lease_seconds: float = 600.0
    poll_seconds: float = 2.0
    once: bool = False
    until_idle: bool = False
    progress: Progress | None = None  # called about once a second while a job runs (a TTY view)
    runner: tuple[str, ...] = field(default_factory=lambda: tuple(jobs.python_runner()))


class TaskOutcome(Model):
    task_id: str
    kind: str
    title: str
    status: str  # done, failed, released, lost
    adopted: bool = False
    seconds: float = 0.0
    note: str | None = None


class WorkerSummary(Model):
    agent: str
    ran: list[TaskOutcome] = []
    idle_reason: str | None = None
    stopped: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


def _wait_for_result(
    store: Store, cfg: WorkerConfig, claim: Claim, folder: Path, stop: threading.Event
) -> jobs.JobResult | None:
    """Heartbeat until the job leaves a result; None when told to stop first."""
    task, epoch = claim.task.id, claim.lease.epoch
    beat_every = max(cfg.lease_seconds / 3, 0.5)
    started = time.monotonic()
    next_beat, next_tick = started + beat_every, started + 1.0
    while True:
        result = jobs.read_result(folder)
        if result is not None:
            return result
        if jobs.running_pid(folder) is None:  # it died without a word: that is its result
            time.sleep(0.2)  # a result written just before exit may land a moment later
            return jobs.read_result(folder) or jobs.JobResult(
                status="failed",
                note=f"the job process exited without a result; see {folder / jobs.LOG}",
            )
        if stop.wait(0.2):
            return None
        if time.monotonic() >= next_beat:
            queue.heartbeat(store, task, epoch, _now(), cfg.lease_seconds)
            next_beat = time.monotonic() + beat_every
        if cfg.progress is not None and time.monotonic() >= next_tick:
            cfg.progress(task, time.monotonic() - started)
            next_tick += 1.0


def run_task(
    store: Store, cfg: WorkerConfig, claim: Claim, stop: threading.Event, emit: Emit
) -> TaskOutcome:
    """Run (or adopt) the claimed task's job and report it; release on stop."""
    task = claim.task
    folder = jobs.job_dir(cfg.lab_dir, task.id)
    adopted = jobs.read_result(folder) is not None or jobs.running_pid(folder) is not None
    if adopted:
        emit(f"{cfg.agent}: adopting the job already in {folder} for {task.id}")
    else:
        spec = jobs.JobSpec(
            task_id=task.id,
            kind=task.kind,
            spec=task.spec,
            repo=str(cfg.repo),
            lab_dir=str(cfg.lab_dir),
            db=cfg.db,
        )
        started = jobs.start(spec, list(cfg.runner), cfg.agent, _now())
        emit(f"{cfg.agent}: {task.id} ({task.kind}) started as pid {started.pid}: {task.title}")
    outcome = TaskOutcome(
        task_id=task.id, kind=task.kind, title=task.title, status="running", adopted=adopted
    )
    try:
        result = _wait_for_result(store, cfg, claim, folder, stop)
        if result is None:
            note = f"worker {cfg.agent} stopped; its job keeps running in {folder} and the next claim adopts it"
            queue.release(store, task.id, claim.lease.epoch, _now(), note)
            emit(f"{cfg.agent}: released {task.id} ({note})")
            return outcome.model_copy(update={"status": "released", "note": note})
        payload = {
            **result.payload,
            "job": {
                "folder": str(folder),
                "adopted": adopted,
                "seconds": result.seconds,
                "log_tail": jobs.log_tail(folder),  # indexed for `swarm search`
            },
        }
        queue.report(
            store,
            task.id,
            claim.lease.epoch,
            result.status,
            _now(),
            payload,
            result.note,
            None,
            result.findings,
        )
    except LeaseLost as exc:
        emit(f"{cfg.agent}: lost {task.id}: {exc}")
        return outcome.model_copy(update={"status": "lost", "note": str(exc)})
    emit(
        f"{cfg.agent}: {task.id} {result.status} in {result.seconds:.1f} s"
        + (" (adopted)" if adopted else "")
    )
    return outcome.model_copy(
        update={"status": result.status, "seconds": result.seconds, "note": result.note}
    )


def work(store: Store, cfg: WorkerConfig, stop: threading.Event, emit: Emit) -> WorkerSummary:
    """Claim and run tasks of the configured kinds until stopped (or idle, or once)."""
    ran: list[TaskOutcome] = []
    idle: str | None = None
    said: str | None = None
    while not stop.is_set():
        try:
            claim = queue.claim(store, cfg.agent, _now(), cfg.lease_seconds, list(cfg.kinds))
        except NothingClaimable as exc:
            why = str(exc).removeprefix(f"nothing claimable for {cfg.agent}: ")
            if why != said:  # what it waits for, once per change (e.g. a GPU a server holds)
                emit(f"{cfg.agent}: waiting: {why}")
                said = why
            if cfg.until_idle or cfg.once:
                idle = str(exc)
                break
            stop.wait(cfg.poll_seconds)
            continue
        said = None
        ran.append(run_task(store, cfg, claim, stop, emit))
        if cfg.once:
            break
    return WorkerSummary(agent=cfg.agent, ran=ran, idle_reason=idle, stopped=stop.is_set())


def waiting_reasons(store: Store, agent: str, runs: Sequence[str] | None = None) -> str:
    """What the remaining pending tasks wait for, as seen by this agent (which runs the kinds in
    runs: a ready task of another kind waits for an agent that runs it)."""
    try:
        return queue.explain_unclaimable(store, agent, None, runs)
    except NothingClaimable as exc:  # pragma: no cover - explain never raises this
        return str(exc)
