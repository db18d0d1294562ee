"""`swarm work`: the built-in workers, which run the tasks this host can execute as jobs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from swarm.cli import base
from swarm.cli.base import Commands, Context, UsageError


def _maintenance_tasks(ctx: Context, kinds: Sequence[str]) -> list[str]:
    """Queue this commit's kernel build and facts pass once (dedupe keys carry the commit)."""
    import contextlib
    import subprocess

    from swarm.core.errors import Duplicate
    from swarm.core.models import NewTask, Requires
    from swarm.queue import queue

    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    wanted = [
        NewTask(
            kind="kernel",
            title=f"build and check every kernel at {head or 'this tree'}",
            spec={"name": "all", "test": True},
            requires=Requires(tools=("nvcc",)),
            dedupe_key=f"kernels@{head}",
            priority=5,
        ),
        NewTask(
            kind="verify",
            title=f"check citations, reconcile facts, regenerate the README at {head or 'this tree'}",
            spec={"scope": "all"},
            dedupe_key=f"facts@{head}",
            priority=1,
        ),
    ]
    added = []
    for new in wanted:
        if new.kind not in kinds:
            continue
        with contextlib.suppress(Duplicate):  # already queued for this commit
            added.append(queue.add_task(ctx.store, new, base.now(), actor="swarm work").id)
    return added


def _worker_loop(ctx: Context, name: str, kinds: tuple[str, ...]) -> Any:
    import signal
    import threading

    from swarm.queue import worker

    a, repo = ctx.args, base.repo()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    tty = sys.stdout.isatty() and not a.json

    def progress(task: str, seconds: float) -> None:  # a live line on a terminal, nothing otherwise
        print(f"\r  {task} running for {seconds:4.0f} s ", end="", flush=True)

    cfg = worker.WorkerConfig(
        agent=name,
        kinds=kinds,
        repo=repo,
        lab_dir=ctx.settings.lab_dir,
        db=ctx.settings.db,
        lease_seconds=a.lease or ctx.settings.lease_seconds,
        once=a.once,
        until_idle=a.until_idle,
        progress=progress if tty else None,
    )
    return worker.work(
        ctx.store,
        cfg,
        stop,
        lambda line: print(
            ("\r" if tty else "") + line, file=sys.stderr if a.json else sys.stdout, flush=True
        ),
    )


def add_work(cli: Commands) -> None:
    p = cli.add(
        "work",
        cmd_work,
        "the built-in workers: run every task this host can execute (kernel builds, facts) as jobs",
    )
    p.add_argument("--agents", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--kind",
        action="append",
        help="only these kinds (repeatable; default: every kind this host can run: deploy, "
        "benchmark, kernel, verify)",
    )
    p.add_argument("--once", action="store_true", help="each worker runs at most one task")
    p.add_argument(
        "--until-idle",
        action="store_true",
        help="stop when nothing is claimable (default: keep polling)",
    )
    p.add_argument(
        "--lease", type=float, help="lease seconds (default: SWARM_LEASE_SECONDS or 600)"
    )
    p.add_argument("--name", help="agent name prefix (default: work)")
    p.add_argument(
        "--runtime",
        choices=["docker", "process"],
        help="start every deployment this way, whatever its recipe says (process: no Docker here)",
    )
    p.add_argument(
        "--gpu",
        action="append",
        metavar="NAME:ARCH:GB",
        help="declare this host's GPUs instead of reading NVML (a driver NVML cannot read; tests)",
    )
    p.add_argument(
        "--no-maintenance",
        action="store_true",
        help="do not queue this commit's kernel build and facts pass",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)


def cmd_work(ctx: Context) -> None:
    from swarm.core.limits import Workers, check
    from swarm.queue.catalog import load_catalog
    from swarm.queue.worker import waiting_reasons
    from tools.executors import DEFAULT_KINDS, EXECUTORS

    check(Workers, ctx.args.agents, "--agents")  # before anything is queued or registered
    a, repo = ctx.args, base.repo()
    kinds = tuple(k for k in (a.kind or DEFAULT_KINDS) if k in EXECUTORS)
    if not kinds:
        raise UsageError(
            f"none of {', '.join(a.kind)} has an executor on this host; these do: {', '.join(EXECUTORS)}"
        )
    if a.worker:  # one worker process started by the parent below
        summary = _worker_loop(ctx, a.worker, kinds)
        print(summary.model_dump_json())
        return
    load_catalog(ctx.store, repo / "tasks", base.now())
    queued = [] if a.no_maintenance else _maintenance_tasks(ctx, kinds)
    if a.runtime:  # the jobs are processes: they read it from their environment
        from tools.lab_deploy import RUNTIME_ENV

        os.environ[RUNTIME_ENV] = a.runtime
    names = _register_workers(ctx, kinds, queued)
    if a.agents == 1:
        summaries = [_worker_loop(ctx, names[0], kinds)]
    else:
        summaries = _worker_processes(ctx, names, kinds)
    _work_summary(ctx, summaries, waiting_reasons(ctx.store, names[0], kinds))


def _register_workers(ctx: Context, kinds: tuple[str, ...], queued: list[str]) -> list[str]:
    """Register --agents workers with this host's capabilities (or --gpu's); say so to people."""
    import socket

    from swarm.queue import agents
    from tools.capabilities import detect

    a = ctx.args
    declared = tuple(base.parse_gpu(text, i) for i, text in enumerate(a.gpu or []))
    caps = detect(gpus=declared) if declared else detect()
    names = [f"{a.name or 'work'}-{socket.gethostname()}-{i}" for i in range(a.agents)]
    for name in names:
        agents.register(ctx.store, name, caps, base.now())
    if not a.json:
        gpus = ", ".join(f"{g.name} ({g.arch})" for g in caps.gpus) or f"none ({caps.gpu_note})"
        print(
            f"lab {ctx.store.location}: {len(names)} worker(s) for {', '.join(kinds)}; GPUs: {gpus}; "
            f"tools: {', '.join(caps.tools) or 'none'}"
            + (f"; queued {', '.join(queued)}" if queued else ""),
            flush=True,
        )
    return names


def _worker_processes(ctx: Context, names: list[str], kinds: tuple[str, ...]) -> list[Any]:
    """One `swarm work --worker NAME` process per worker; a signal here is passed on to each."""
    import signal
    import subprocess

    from swarm.queue.worker import WorkerSummary

    a = ctx.args
    argv = [sys.executable, "-m", "swarm.cli", "work", "--json", "--worker"]
    flags = (
        [f for k in kinds for f in ("--kind", k)]
        + (["--once"] if a.once else [])
        + (["--until-idle"] if a.until_idle else [])
        + (["--lease", str(a.lease)] if a.lease else [])
        + (["--db", a.db] if a.db else [])
    )
    procs = [subprocess.Popen([*argv, n, *flags], stdout=subprocess.PIPE, text=True) for n in names]

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:  # each worker releases its lease and leaves its job running
            proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    return [
        WorkerSummary.model_validate_json(p.communicate()[0].strip().splitlines()[-1])
        for p in procs
    ]


def _work_summary(ctx: Context, summaries: list[Any], waiting: str) -> None:
    from swarm.present import readme

    ran = [t for s in summaries for t in s.ran]
    facts = readme.load_facts(base.repo() / "facts" / "verified_facts.json")
    open_conflicts = [c for c in facts.conflicts if c.state == "open"]
    body = {
        "ran": [t.model_dump() for t in ran],
        "waiting": waiting,
        "stopped": any(s.stopped for s in summaries),
        "open_conflicts": [{"id": c.id, "reason": c.reason} for c in open_conflicts],
    }

    def text() -> str:
        lines = ["", f"ran {len(ran)} task(s):"] + [
            f"  {t.task_id} {t.kind}: {t.status}"
            + (" (adopted)" if t.adopted else "")
            + (f" - {t.note}" if t.note else "")
            for t in ran
        ]
        lines += ["", "still waiting: " + waiting.removeprefix("nothing claimable for ")]
        lines += ["", f"{len(open_conflicts)} open conflicts for people (swarm triage):"]
        lines += [f"  {c.id} {c.reason}" for c in open_conflicts]
        return "\n".join(lines)

    ctx.emit(body, text)
    if any(t.status == "failed" for t in ran):
        ctx.exit_code = 1


def register(cli: Commands) -> None:
    add_work(cli)
