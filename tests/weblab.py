"""A seed lab with people's pages to look at: the catalog and the seed's findings, agents with
GPUs, a claimed deployment holding a GPU share, a failed task whose log says why, and a
benchmark sweep; served by a real `swarm serve --http` on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from swarm.core.models import NewTask, Requires
from swarm.db.store import open_store
from swarm.facts.findings import add_findings
from swarm.lab import pipeline as facts
from swarm.lab.seed import seed_findings
from swarm.queue import queue
from swarm.queue.catalog import load_catalog
from tests.conftest import REPO, free_port, gpu, register, wait_for_port


@dataclass(frozen=True)
class WebLab:
    path: Path
    db: str
    claimed: str  # a deployment holding a GPU share
    failed: str  # a task that failed with "SMEM overflow" in its note and log
    bench: str  # a benchmark with a sweep (its result has the plot)


def build(path: Path, db: str) -> WebLab:
    """The lab under path (a git repo with facts/ and tasks/) on the database db."""
    from tests.test_benchmark import _run
    from tools import bench_lab
    from tools.fake_openai import Script

    for folder in ("facts", "tasks"):
        shutil.copytree(REPO / folder, path / folder)
    for generated in (facts.LOG, facts.FACTS, facts.RUNS):
        (path / "facts" / generated).unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    now = datetime.now(UTC)  # the board shows ages against the clock
    store = open_store(db)
    load_catalog(store, path / "tasks", now)
    add_findings(store, seed_findings(path), "seed", now)
    register(store, "pro-1", gpu("RTX Pro 6000", "sm_120", 96.0, "GPU-pro-0"), host="pro6000")
    register(store, "spark-1", gpu("NVIDIA GB10", "sm_121", 128.0, "GPU-gb10"), host="spark")
    register(store, "bench-4090", gpu("RTX 4090", "sm_89", 24.0, "GPU-4090"), host="box4090")
    register(store, "pro-2", gpu("RTX Pro 6000", "sm_120", 96.0, "GPU-pro-0"), host="pro6000")
    shares = []  # two tenants sharing the Pro 6000: a deployment's 60 GB and a probe's 20 GB
    for agent, title, gb in (
        ("pro-1", "serve Qwen3-32B-FP8", 60.0),
        ("pro-2", "NVFP4 GEMM probe", 20.0),
    ):
        needs = Requires(gpu="RTX Pro 6000", gpu_mem_gb=gb)
        task = queue.add_task(store, NewTask(kind="other", title=title, requires=needs), now)
        shares.append(queue.claim(store, agent, now, 3600, task_id=task.id).task.id)
    claimed = shares[0]
    question = {"question": "why does the fused MoE kernel fail on GB10?"}
    probe = NewTask(
        kind="research", title="MoE kernel probe", spec=question, requires=Requires(arch="sm_121")
    )
    failed = queue.add_task(store, probe, now).id
    lease = queue.claim(store, "spark-1", now, 600, task_id=failed).lease
    log = "step 3: launching fused_moe\nRuntimeError: triton SMEM overflow: 132 KB > 99 KB\n"
    queue.report(store, failed, lease.epoch, "failed", now, {"job": {"log_tail": log}},
                 "SMEM overflow in the fused MoE kernel")  # fmt: skip
    waiting = queue.list_tasks(store, states=["pending"], kinds=["benchmark"])
    bench = next(t for t in waiting if t.spec.get("gpu") == "RTX 4090" and not t.blocked_by).id
    lease = queue.claim(store, "bench-4090", now, 600, task_id=bench).lease
    report = _run(Script(itl_s=0.0005), concurrency=[1, 2, 4], output_len=8, requests=8)
    queue.report(store, bench, lease.epoch, "done", now, bench_lab.payload(report))
    store.close()
    return WebLab(path=path, db=db, claimed=claimed, failed=failed, bench=bench)


@contextmanager
def serve(lab: WebLab) -> Iterator[tuple[str, str]]:
    """`swarm serve --http` in the lab's repo: (base URL, the operator's token)."""
    port = free_port()
    lab_dir = lab.path / "labdir"
    env = {**os.environ, "SWARM_DB": lab.db, "SWARM_LAB_DIR": str(lab_dir), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarm.cli", "serve", "--http", "--port", str(port)],
        cwd=lab.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(proc, port)
    try:
        yield f"http://127.0.0.1:{port}", (lab_dir / "http_token").read_text().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
