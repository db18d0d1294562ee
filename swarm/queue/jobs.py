"""Detached jobs: each task's work runs as its own process, with a folder that outlives its worker.

`<lab dir>/jobs/<task id>/` holds `job.json` (what to run, the pid, when it started), `log.txt`
(the process's output) and, once it finished, `result.json`. A worker that is killed, or that
releases its lease on SIGTERM, leaves the job running; whoever claims the task next adopts the
job's result (or waits for the running job) instead of starting the work again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from swarm import SCHEMA_VERSION
from swarm.core import atomic
from swarm.core.models import Model, iso
from swarm.facts.findings import NewFinding

JOB = "job.json"
RESULT = "result.json"
LOG = "log.txt"


class JobSpec(Model):
    schema_version: int = SCHEMA_VERSION
    task_id: str
    kind: str
    spec: dict[str, Any]
    repo: str
    lab_dir: str
    db: str
    pid: int | None = None
    started_at: str | None = None
    started_by: str | None = None


class JobResult(Model):
    """What a job leaves behind; the worker reports it as the task's result."""

    schema_version: int = SCHEMA_VERSION
    status: Literal["done", "failed"]
    payload: dict[str, Any] = {}
    note: str | None = None
    findings: tuple[NewFinding, ...] = ()
    seconds: float = 0.0
    adopted: bool = Field(
        False, description="reported by a worker other than the one that started it"
    )


def job_dir(lab_dir: Path, task_id: str) -> Path:
    return lab_dir / "jobs" / task_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child of ours is a zombie until reaped: it is not running
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def read_result(folder: Path) -> JobResult | None:
    path = folder / RESULT
    return (
        JobResult.model_validate_json(path.read_text(encoding="utf-8")) if path.exists() else None
    )


def write_result(folder: Path, result: JobResult) -> None:
    """Atomic: a reader sees the whole result or none (write then rename)."""
    atomic.write_text(folder / RESULT, result.model_dump_json())


def running_pid(folder: Path) -> int | None:
    """The pid of this folder's job if it is still running."""
    path = folder / JOB
    if not path.exists():
        return None
    pid = JobSpec.model_validate_json(path.read_text(encoding="utf-8")).pid
    return pid if pid is not None and _alive(pid) else None


def start(spec: JobSpec, runner: list[str], agent: str, now: datetime) -> JobSpec:
    """Start the job in its own session (it survives its worker) with output to log.txt."""
    folder = job_dir(Path(spec.lab_dir), spec.task_id)
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / JOB, spec.model_dump_json())
    with open(folder / LOG, "ab") as log:
        proc = subprocess.Popen(
            [*runner, str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=spec.repo,
        )
    started = spec.model_copy(update={"pid": proc.pid, "started_at": iso(now), "started_by": agent})
    atomic.write_text(folder / JOB, started.model_dump_json())
    return started


def python_runner() -> list[str]:
    """How a job process is started: this interpreter running the tools' job entry point."""
    return [sys.executable, "-m", "tools.run_job"]


def log_tail(folder: Path, limit: int = 4000) -> str | None:
    """The last `limit` characters of the job's log (what a search finds a failure by)."""
    path = folder / LOG
    if not path.exists():
        return None
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - limit))
        return handle.read().decode("utf-8", errors="replace")


def load_spec(folder: Path) -> JobSpec:
    return JobSpec.model_validate_json((folder / JOB).read_text(encoding="utf-8"))


def describe(folder: Path) -> dict[str, Any]:
    job = json.loads((folder / JOB).read_text(encoding="utf-8")) if (folder / JOB).exists() else {}
    return {
        "folder": str(folder),
        **job,
        "running": running_pid(folder) is not None,
        "finished": (folder / RESULT).exists(),
    }
