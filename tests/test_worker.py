"""`swarm work` end to end in fresh clones: the main job, SIGTERM mid-task, adoption of a job."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from swarm.core.models import NewTask
from swarm.db.store import SqliteStore
from swarm.queue import jobs, queue, worker
from tests.conftest import REPO, T0, register

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")


def clone(tmp_path: Path) -> Path:
    target = tmp_path / "lab"
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True)
    return target


def swarm(repo: Path, db: str | Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SWARM_DB"] = str(db)
    return subprocess.Popen(
        [sys.executable, "-m", "swarm.cli", *args],
        cwd=repo,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@needs_nvcc
@pytest.mark.slow
def test_the_main_job_runs_what_this_host_can_and_says_what_waits(tmp_path: Path, db: str) -> None:
    repo = clone(tmp_path)
    out, err = swarm(repo, db, "work", "--until-idle", "--json").communicate(timeout=300)
    summary = json.loads(out.strip().splitlines()[-1])
    assert {(t["kind"], t["status"]) for t in summary["ran"]} == {
        ("kernel", "done"),
        ("verify", "done"),
    }, err
    assert "tasks wait for an sm_120 'RTX Pro 6000' host" in summary["waiting"]
    # the conflicts' research tasks are ready, but no executor here runs them: said so
    assert "wait for an agent that runs research tasks" in summary["waiting"]
    assert "ready now: retry" not in summary["waiting"]
    assert len(summary["open_conflicts"]) >= 10
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
    ).stdout
    assert dirty == "", "the facts pass and README regeneration must reproduce what is committed"
    again, _ = swarm(repo, db, "work", "--until-idle", "--json").communicate(timeout=120)
    assert (
        json.loads(again.strip().splitlines()[-1])["ran"] == []
    )  # this commit's work is done once


@needs_nvcc
@pytest.mark.slow
def test_sigterm_releases_the_lease_and_the_next_worker_adopts_the_running_job(
    tmp_path: Path,
) -> None:
    repo, db = clone(tmp_path), tmp_path / "lab.db"
    first = swarm(repo, db, "work", "--until-idle", "--kind", "kernel", "--json")
    jobs_dir = tmp_path / "jobs"
    deadline = time.monotonic() + 60
    while (
        not list(jobs_dir.glob("*/job.json"))
        or '"pid": null' in next(iter(jobs_dir.glob("*/job.json"))).read_text()
    ):
        assert time.monotonic() < deadline and first.poll() is None, "the job never started"
        time.sleep(0.1)
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=60)
    stopped = json.loads(out.strip().splitlines()[-1])
    assert stopped["stopped"] and stopped["ran"][0]["status"] == "released"
    task_id = stopped["ran"][0]["task_id"]
    store = SqliteStore(db)
    task = queue.get_task(store, task_id)
    assert task.state == "pending" and "keeps running" in (task.note or "")
    second, _ = swarm(
        repo, db, "work", "--until-idle", "--kind", "kernel", "--no-maintenance", "--json"
    ).communicate(timeout=300)
    (ran,) = json.loads(second.strip().splitlines()[-1])["ran"]
    assert (ran["task_id"], ran["status"], ran["adopted"]) == (task_id, "done", True)
    log = (jobs_dir / task_id / "log.txt").read_text()
    assert log.count("starting") == 1, "the work ran once, not twice"
    (result,) = queue.task_results(store, task_id)
    assert result.payload["job"]["adopted"] is True


def _verify_worker(
    lab: Path, runner: tuple[str, ...], once: bool = False, until_idle: bool = False
) -> worker.WorkerConfig:
    """A worker for verify tasks of the lab in `lab`, starting its jobs with `runner`."""
    return worker.WorkerConfig(agent="w", kinds=("verify",), repo=lab, lab_dir=lab,
                               db=str(lab / "lab.db"), runner=runner, once=once,
                               until_idle=until_idle)  # fmt: skip


def test_a_finished_orphaned_job_is_reported_without_running_again(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "lab.db")
    register(store, "w")
    task = queue.add_task(store, NewTask(kind="verify", title="facts"), T0)
    folder = jobs.job_dir(tmp_path, task.id)
    folder.mkdir(parents=True)
    jobs.write_result(folder, jobs.JobResult(status="done", payload={"facts": 3}, seconds=1.5))
    cfg = _verify_worker(tmp_path, runner=("false",), until_idle=True)
    lines: list[str] = []
    summary = worker.work(store, cfg, threading.Event(), lines.append)
    assert [(t.status, t.adopted) for t in summary.ran] == [("done", True)]
    assert queue.task_results(store, task.id)[0].payload["facts"] == 3
    assert not (folder / jobs.LOG).exists()  # nothing was started
    assert "no pending tasks" in (summary.idle_reason or "")


def test_a_job_that_dies_without_a_result_fails_its_task_with_the_log_named(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "lab.db")
    register(store, "w")
    task = queue.add_task(store, NewTask(kind="verify", title="facts"), T0)
    cfg = _verify_worker(
        tmp_path, runner=(sys.executable, "-c", "import sys; sys.exit(3)"), once=True
    )
    summary = worker.work(store, cfg, threading.Event(), lambda _: None)
    assert summary.ran[0].status == "failed" and "exited without a result" in (
        summary.ran[0].note or ""
    )
    assert queue.get_task(store, task.id).state == "failed"
