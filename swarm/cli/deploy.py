"""`swarm deploy`: model servers from deployment directories or deploy tasks."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swarm.cli import base
from swarm.cli.base import Commands, Context, UsageError


def _gpu_total(a: argparse.Namespace, gpus: Sequence[str]) -> float | None:
    """The GPU's memory: --gpu-total-gb, else NVML for the first GPU the deployment names."""
    if a.gpu_total_gb:
        return float(a.gpu_total_gb)
    from tools.gpu import NvmlSource

    for gpu in NvmlSource().read().gpus:
        if gpus and gpus[0] in (str(gpu.index), gpu.uuid):
            return gpu.memory_total_gb
    return None


def _task_deployment(ctx: Context) -> Any:
    """A deploy task resolved against recipes/engines.toml; its plan, or exactly what is missing."""
    from swarm.core.errors import InvalidInput
    from swarm.queue import queue
    from tools import deploy, lab_deploy
    from tools.gpu import NvmlSource

    a = ctx.args
    task = queue.get_task(ctx.store, a.task)
    if task.kind != "deploy":
        raise InvalidInput(f"{a.task} is a {task.kind} task, not a deploy task")
    inventory = NvmlSource().read()
    resolution = lab_deploy.resolve_task(
        task, base.repo(), inventory, arch=a.arch, runtime=a.runtime
    )
    if resolution.config is None:
        raise InvalidInput(f"{a.task} has no plan; missing: " + "; ".join(resolution.missing))
    cfg = resolution.config
    total = a.gpu_total_gb or lab_deploy.gpu_total_gb(inventory, cfg.gpus)
    folder = ctx.settings.lab_dir / "deployments" / a.task  # where its files are written
    return resolution, cfg, deploy.plan(cfg, total, folder=folder)


def _deploy_task(ctx: Context) -> None:
    """`swarm deploy --task ID`: plan it (--dry-run), start it (docker or process) or stop it
    (--down), outside the queue: what `swarm work` does with the task, by hand."""
    from tools import deploy, lab_deploy

    a = ctx.args
    if a.dir or a.shared_tenancy or a.generate:
        raise UsageError("--task takes neither directories nor --generate/--shared-tenancy")
    resolution, cfg, task_plan = _task_deployment(ctx)
    folder = ctx.settings.lab_dir / "deployments" / a.task
    if a.dry_run:
        body = {
            "resolution": resolution.model_dump(mode="json"),
            "plan": task_plan.model_dump(mode="json"),
        }
        print(
            deploy.redact(
                json.dumps(body, indent=None if a.json else 2, sort_keys=True), cfg.secret_env
            )
        )
        return
    if a.down:
        from swarm.queue import queue

        # started by hand (deployments/) or by `swarm work` (its job folder)
        jobs = ctx.settings.lab_dir / "jobs" / a.task
        held = folder if (folder / lab_deploy.SERVER_RECORD).exists() else jobs
        stopped = lab_deploy.stop_recorded(held, cfg)
        why = "stopped by `swarm deploy --down`" + (f" ({', '.join(stopped)})" if stopped else "")
        released = queue.release_server(ctx.store, a.task, base.now(), base.actor(), why)
        ctx.emit(
            {"removed": stopped, "gpu_released": released},
            lambda: (
                "\n".join(
                    [
                        *(f"stopped {n}" for n in stopped),
                        *(
                            [f"{a.task}: its GPU is free for the next deployment"]
                            if released
                            else []
                        ),
                    ]
                )
                or "nothing was running"
            ),
        )
        return
    started = lab_deploy.start(cfg, task_plan, folder)
    record = json.loads(deploy.to_json(started, cfg.secret_env))
    ctx.emit(
        {"deployments": [record]},
        lambda: f"{started.name}: ready at {started.endpoint} in {started.ready_s} s",
    )


def add_deploy(cli: Commands) -> None:
    p = cli.add(
        "deploy",
        cmd_deploy,
        "model servers from deployment directories (deploy.toml) via the Docker Engine API",
    )
    p.add_argument("dir", nargs="*", help="deployment directory holding deploy.toml")
    p.add_argument(
        "--task",
        help="a deploy task instead: its plan from recipes/engines.toml + its spec + this host's GPU",
    )
    p.add_argument("--arch", help="with --task: plan for this GPU architecture (e.g. sm_120)")
    p.add_argument(
        "--runtime",
        choices=["docker", "process"],
        help="with --task: override the recipe's runtime",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument("--dry-run", action="store_true", help="print the exact plan; touch nothing")
    how.add_argument(
        "--generate", action="store_true", help="write compose.yaml a person can run by hand"
    )
    how.add_argument("--down", action="store_true", help="stop and remove (idempotent)")
    p.add_argument(
        "--shared-tenancy",
        action="store_true",
        help="several servers on one GPU, within its memory, in order (with --dry-run or "
        "--generate: their plans and compose files)",
    )
    p.add_argument(
        "--gpu-total-gb", type=float, help="the GPU's memory when NVML cannot say (no driver here)"
    )


def cmd_deploy(ctx: Context) -> None:
    from tools import deploy

    a = ctx.args
    if a.task:
        _deploy_task(ctx)
        return
    if not a.dir:
        raise UsageError("name a deployment directory, or --task ID")
    configs = [deploy.load_config(Path(d)) for d in a.dir]
    secrets = sorted({n for c in configs for n in c.secret_env})
    if a.down:
        removed = [name for c in configs for name in deploy.down(c.name)]
        ctx.emit(
            {"removed": removed},
            lambda: "\n".join(f"removed {n}" for n in removed) or "nothing was running",
        )
        return
    plans, summary = _deploy_plans(a, configs)
    if a.dry_run or a.generate:
        body = {"plans": [p.model_dump(mode="json") for p in plans], "memory": summary}
        if a.generate:
            body["written"] = [
                str(deploy.write_compose(Path(d), c, p))
                for d, c, p in zip(a.dir, configs, plans, strict=True)
            ]
        print(
            deploy.redact(json.dumps(body, indent=None if a.json else 2, sort_keys=True), secrets)
        )
        return
    _deploy_up(ctx, configs, plans, secrets, summary)


def _deploy_plans(a: argparse.Namespace, configs: list[Any]) -> tuple[list[Any], str]:
    """One plan per deployment: alone, or several within one GPU's memory (--shared-tenancy)."""
    from tools import deploy

    if a.shared_tenancy:
        total = _gpu_total(a, configs[0].gpus)
        if total is None:
            raise UsageError(
                "no GPU inventory here to check the memory budget against: pass --gpu-total-gb N"
            )
        return deploy.shared_tenancy(configs, total, [Path(d) for d in a.dir])
    if len(configs) > 1:
        raise UsageError("several deployment directories need --shared-tenancy (or --down)")
    total = _gpu_total(a, configs[0].gpus)
    return [deploy.plan(configs[0], total, folder=Path(a.dir[0]))], ""


def _deploy_up(
    ctx: Context, configs: list[Any], plans: list[Any], secrets: list[str], summary: str
) -> None:
    """Start each server in order, each ready before the next; any failure removes them all."""
    from tools import deploy

    started: list[str] = []
    try:
        results = []
        with deploy.signals_unwind():  # a SIGTERM mid-start removes what it started
            for cfg, p in zip(configs, plans, strict=True):
                results.append(deploy.up(cfg, p))  # each ready before the next starts
                started.append(cfg.name)
    except BaseException:
        for name in started:  # a half-started tenancy is rolled back
            deploy.down(name)
        raise
    out = json.dumps(
        {
            "deployments": [json.loads(deploy.to_json(r, secrets)) for r in results],
            "memory": summary,
        }
    )
    ctx.emit(
        json.loads(out),
        lambda: "\n".join(
            f"{r.name}: ready at {r.endpoint} in {r.ready_s} s ({r.container_id[:12]})"
            for r in results
        ),
    )


def register(cli: Commands) -> None:
    add_deploy(cli)
