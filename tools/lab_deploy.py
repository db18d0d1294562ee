"""The lab side of a deployment: a deploy task resolved against the recipes, run as a job, torn
down after its benchmark.

`swarm deploy --task ID --dry-run` and the `deploy` executor of `swarm work` share resolve_task,
so what the dry run prints is what the worker starts.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from swarm.core.atomic import write_text
from swarm.core.errors import InvalidInput
from swarm.core.models import Task
from swarm.facts.findings import Evidence, EvidenceKind, NewFinding
from swarm.queue.jobs import JobResult, JobSpec
from tools import deploy
from tools.gpu import Inventory, NvmlSource
from tools.recipes import RECIPES, RecipeBook, Resolution, load_book, resolve


def host_arch(inventory: Inventory, wanted: str | None) -> str | None:
    """This host's GPU architecture: the one the task wants if a GPU here has it, else the
    first GPU's; None without a GPU."""
    archs = [g.arch for g in inventory.gpus]
    if wanted and wanted in archs:
        return wanted
    return archs[0] if archs else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


RUNTIME_ENV = "SWARM_DEPLOY_RUNTIME"  # docker or process: overrides every recipe's runtime


def resolve_task(
    task: Task,
    repo: Path,
    inventory: Inventory,
    arch: str | None = None,
    port: int = 8000,
    runtime: str | None = None,
) -> Resolution:
    """The task against the recipe book: the arch is the flag's, else this host's GPU matching
    the task, else the task's own requirement (a dry run on a host without that GPU)."""
    book = load_book(repo / RECIPES)
    wanted = task.requires.arch or task.spec.get("arch")
    chosen = arch or host_arch(inventory, wanted) or wanted
    if runtime not in (None, "docker", "process"):
        raise InvalidInput(f"runtime is docker or process, not {runtime!r}")
    return resolve(book, task.id, task.spec, chosen, port, runtime)  # type: ignore[arg-type]


def gpu_total_gb(inventory: Inventory, gpus: tuple[str, ...]) -> float | None:
    for gpu in inventory.gpus:
        if gpus and gpus[0] in (str(gpu.index), gpu.uuid):
            return gpu.memory_total_gb
    return None


def render(folder: Path, resolution: Resolution, planned: deploy.Plan | None = None) -> Path:
    """deploy.toml for this task, in its job folder: what a person can rerun with `swarm deploy`,
    and the files its plan's server reads (TensorRT-LLM's extra LLM-API options)."""
    import tomli_w

    assert resolution.config is not None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "deploy.toml"
    body = resolution.config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    header = (
        f"# Rendered by swarm work for {resolution.task_id} from {RECIPES} and the task spec.\n"
    )
    write_text(path, header + tomli_w.dumps(body))  # whole or absent, never half-written
    if planned is not None:
        deploy.write_files(planned)
    return path


def failure_findings(
    task: Task, book: RecipeBook, message: str
) -> tuple[list[str], list[NewFinding]]:
    """The seed's known failures the log matches, and a finding per match citing this result."""
    known = book.known(message)
    findings = [
        NewFinding(
            subject=str(task.spec.get("model", task.id)),
            predicate="deploy_known_failure",
            scope={
                "gpu": task.spec.get("gpu") or task.requires.gpu or "unknown",
                "arch": task.requires.arch or "unknown",
                "platform": str(task.spec.get("platform")),
            },
            value=f.cites,
            statement=f"deploying failed the way the seed documents ({f.cites}): {f.what}",
            evidence=(Evidence(kind=EvidenceKind.run, locator="this", metric="known_failure"),),
            attributes={"known_issue": f.cites},
        )
        for f in known[:1]  # the first match: one finding per failed deployment
    ]
    return [f.cites for f in known], findings


def deploy_job(job: JobSpec) -> JobResult:
    """Claim -> render deploy.toml -> start (docker or process) -> wait ready -> the endpoint.
    A failure carries the last log lines and cites the seed's known failure when they match."""
    from swarm.db.store import open_store
    from swarm.queue import queue
    from tools import bench_lab

    task = queue.get_task(open_store(job.db), job.task_id)
    repo, folder = Path(job.repo), Path(job.lab_dir) / "jobs" / job.task_id
    inventory = NvmlSource().read()
    # `swarm work --runtime` reaches its jobs through their environment (they are processes)
    runtime = os.environ.get(RUNTIME_ENV) or None
    resolution = resolve_task(task, repo, inventory, port=free_port(), runtime=runtime)
    base: dict[str, Any] = {"resolution": resolution.model_dump(mode="json")}
    if resolution.config is None:
        note = "no plan for this deployment; missing: " + "; ".join(resolution.missing)
        return JobResult(status="failed", payload=base, note=note)
    cfg = resolution.config
    planned = deploy.plan(cfg, gpu_total_gb(inventory, cfg.gpus), folder=folder)
    render(folder, resolution, planned)
    secrets = list(cfg.secret_env)
    try:
        deployment = start(cfg, planned, folder)
    except deploy.DeployFailed as exc:
        message = deploy.redact(str(exc), secrets)
        known, findings = failure_findings(task, load_book(repo / RECIPES), message)
        payload = base | {"error": message[-4000:], "known_failure": known[0] if known else None}
        note = f"{message.splitlines()[0]}" + (f" (a known failure: {known[0]})" if known else "")
        return JobResult(status="failed", payload=payload, note=note, findings=tuple(findings))
    record = json.loads(deploy.to_json(deployment, secrets))
    payload = base | {
        "endpoint": deployment.endpoint,
        "deployment": record,
        "keep": resolution.keep,
        "engine_version": bench_lab.server_version(deployment.endpoint) or local_version(cfg),
        "gpus": inventory.model_dump(mode="json"),
    }
    return JobResult(status="done", payload=payload, note=resolution.image_note)


SERVER_RECORD = "server.json"  # the started server, so that a later --down finds it


def start(cfg: deploy.DeployConfig, plan: deploy.Plan, folder: Path) -> deploy.Deployment:
    """Start the server its runtime's way and wait until ready; a signal on the way removes it.
    The record lands in folder/server.json."""
    from tools import process_runtime

    with deploy.signals_unwind():
        if cfg.runtime == "process":
            deployment = process_runtime.up(cfg, plan, folder)
        else:
            deployment = deploy.up(cfg, plan)
    write_text(folder / SERVER_RECORD, deploy.to_json(deployment, list(cfg.secret_env)))
    return deployment


def stop_recorded(folder: Path, cfg: deploy.DeployConfig) -> list[str]:
    """Stop what `start` recorded in folder (or, for a container, whatever carries its name)."""
    path = folder / SERVER_RECORD
    record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"name": cfg.name}
    if cfg.runtime == "docker":
        record = {"name": cfg.name}
    stopped = teardown({"deployment": record})
    if stopped and path.exists():
        path.unlink()
    return [stopped] if stopped else []


# The Python distribution of each engine, for a local process whose server has no /version.
ENGINE_DISTS = {"transformers": "transformers", "vllm": "vllm", "sglang": "sglang",
                "tensorrt-llm": "tensorrt_llm"}  # fmt: skip


def local_version(cfg: deploy.DeployConfig) -> str | None:
    """The engine's version for the process runtime, from the interpreter its executable runs
    (read from the script's #! line; else this interpreter): transformers serve has no /version."""
    import shutil
    import subprocess
    import sys

    dist = ENGINE_DISTS.get(cfg.platform)
    if cfg.runtime != "process" or dist is None:
        return None
    python = sys.executable
    exe = shutil.which(cfg.command[0] if cfg.command else dist.replace("_", "-"))
    if exe:
        with open(exe, "rb") as head:
            first = head.readline().decode(errors="replace").strip()
        if first.startswith("#!") and "python" in first:
            python = first[2:].split()[0]
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return f"{dist} {done.stdout.strip()}" if done.returncode == 0 and done.stdout.strip() else None


def teardown(payload: dict[str, Any]) -> str | None:
    """Stop the server a deploy result names (container or process); what was stopped, or None."""
    from tools import process_runtime

    record = payload.get("deployment") or {}
    if record.get("runtime") == "process" and record.get("pid"):
        pid, command = int(record["pid"]), (record.get("plan") or {}).get("command") or []
        if not process_runtime.is_server(pid, command):  # gone, or its pid reused since
            return None
        return f"process {pid}" if process_runtime.stop(pid) else None
    if record.get("name"):
        removed = deploy.down(str(record["name"]))
        return ", ".join(removed) or None
    return None
