"""The queue's commands: init, add, claim, heartbeat, release, report, ls, show, log, status, reap."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import get_args

from swarm.cli import base
from swarm.cli.base import Commands, Context, UsageError
from swarm.core.kinds import TaskKind


def _lease_args(p: argparse.ArgumentParser, epoch_required: bool = True) -> None:
    p.add_argument("task", help="task id")
    p.add_argument(
        "--epoch", type=int, required=epoch_required, help="the fencing token claim returned"
    )
    p.add_argument(
        "--agent",
        help="agent name (default: SWARM_AGENT); only the lease's holder may use its epoch",
    )


def add_init(cli: Commands) -> None:
    p = cli.add("init", cmd_init, "create the lab database (idempotent) and load the task catalog")
    p.add_argument("--catalog", help="catalog folder of *.toml (default: tasks/ of this repo)")


def cmd_init(ctx: Context) -> None:
    from swarm.core.settings import repo_root
    from swarm.queue.catalog import load_catalog

    folder = ctx.args.catalog or (repo_root(Path.cwd()) or Path.cwd()) / "tasks"
    report = load_catalog(ctx.store, Path(folder), base.now())
    ctx.emit(
        {"db": ctx.store.location, **report.model_dump()},
        lambda: (
            f"lab database: {ctx.store.location}\ncatalog: {', '.join(report.files) or 'none'} "
            f"({report.added} tasks added, {report.skipped} already present)"
        ),
    )


def add_add(cli: Commands) -> None:
    p = cli.add("add", cmd_add, "queue a task")
    p.add_argument("kind", help=f"{', '.join(get_args(TaskKind))} (other: a free-form spec)")
    p.add_argument("title")
    p.add_argument("--spec", help="JSON object, @file, file path or - for stdin; validated by kind")
    p.add_argument("--priority", type=int, default=0, help="higher is claimed first (default 0)")
    p.add_argument("--arch", help="required GPU arch, e.g. sm_120")
    p.add_argument("--gpu", help="required GPU name, e.g. 'RTX Pro 6000'")
    p.add_argument("--gpu-mem", type=float, help="GPU memory share to lease, GB")
    p.add_argument("--exclusive", action="store_true", help="lease a whole GPU")
    p.add_argument("--host", help="required host")
    p.add_argument("--tool", action="append", default=[], help="required tool (repeatable)")
    p.add_argument("--depends-on", action="append", default=[], help="task id (repeatable)")
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--dedupe-key", help="refuse a second task with the same (normalised) key")
    p.add_argument("--id", help="explicit task id (default: derived)")


def cmd_add(ctx: Context) -> None:
    from swarm.core.models import NewTask, Requires
    from swarm.present import render
    from swarm.queue import queue

    a = ctx.args
    requires = Requires(
        arch=a.arch,
        gpu=a.gpu,
        gpu_mem_gb=a.gpu_mem,
        exclusive=a.exclusive,
        host=a.host,
        tools=tuple(a.tool),
    )
    new = NewTask(
        kind=a.kind,
        title=a.title,
        spec=base.read_json(a.spec),
        priority=a.priority,
        requires=requires,
        depends_on=tuple(a.depends_on),
        max_attempts=a.max_attempts,
        dedupe_key=a.dedupe_key,
        id=a.id,
    )
    if ctx.remote:
        task = ctx.remote.add(new)
    else:
        task = queue.add_task(
            ctx.store, new, base.now(), actor=os.environ.get("SWARM_AGENT", "cli")
        )
    ctx.emit(task, lambda: f"added {task.id}\n" + render.task(task))


def add_claim(cli: Commands) -> None:
    p = cli.add("claim", cmd_claim, "claim the best ready task this agent can run")
    p.add_argument("--agent", help="agent name (default: SWARM_AGENT)")
    p.add_argument("--kind", action="append", help="only this kind (repeatable)")
    p.add_argument(
        "--lease", type=float, help="lease seconds (default: SWARM_LEASE_SECONDS or 600)"
    )


def cmd_claim(ctx: Context) -> None:
    from swarm.core.errors import UnknownAgent
    from swarm.present import render
    from swarm.queue import queue

    agent, kinds = base.agent(ctx.args), ctx.args.kind or None
    if ctx.remote:  # the server's lease length unless --lease
        claim = ctx.remote.claim(ctx.args.lease, kinds)
        ctx.emit(claim, lambda: render.claim(claim))
        return
    lease = ctx.settings.lease_seconds if ctx.args.lease is None else ctx.args.lease
    try:
        claim = queue.claim(ctx.store, agent, base.now(), lease, kinds)
    except UnknownAgent:
        base.register_agent(ctx, agent)  # first claim of a new agent: register what this host has
        claim = queue.claim(ctx.store, agent, base.now(), lease, kinds)
    ctx.emit(claim, lambda: render.claim(claim))


def add_heartbeat(cli: Commands) -> None:
    p = cli.add("heartbeat", cmd_heartbeat, "extend the lease on a claimed task")
    _lease_args(p)
    p.add_argument("--lease", type=float, help="new lease length in seconds")


def cmd_heartbeat(ctx: Context) -> None:
    from swarm.queue import queue

    a = ctx.args
    if ctx.remote:
        lease = ctx.remote.heartbeat(a.task, a.epoch, a.lease)
    else:
        seconds = ctx.settings.lease_seconds if a.lease is None else a.lease
        lease = queue.heartbeat(
            ctx.store, a.task, a.epoch, base.now(), seconds, agent=base.agent(a)
        )
    ctx.emit(lease, lambda: f"{a.task}: lease (epoch {lease.epoch}) extended to {lease.expires_at}")


def add_release(cli: Commands) -> None:
    p = cli.add("release", cmd_release, "hand a claimed task back to the queue")
    _lease_args(p, epoch_required=False)
    p.add_argument("--note", help="why, kept on the task")
    p.add_argument(
        "--force",
        action="store_true",
        help="operator: end whoever holds it now (needs --note; recorded in the log)",
    )


def cmd_release(ctx: Context) -> None:
    from swarm.queue import queue

    a = ctx.args
    if a.force:
        return _force_release(ctx)
    if a.epoch is None:
        raise UsageError("give --epoch (the fencing token claim returned), or --force --note WHY")
    if ctx.remote:
        task = ctx.remote.release(a.task, a.epoch, a.note)
    else:
        task = queue.release(ctx.store, a.task, a.epoch, base.now(), a.note, agent=base.agent(a))
    ctx.emit(task, lambda: f"released {task.id}: back to {task.state}")


def _force_release(ctx: Context) -> None:
    """The operator ends another agent's lease: on the lab host (a person) or with the
    operator's token through --server."""
    from swarm.queue import queue

    a = ctx.args
    if not a.note:
        raise UsageError("--force needs --note WHY (it is kept in the task's log)")
    if ctx.remote:
        task = ctx.remote.force_release(a.task, a.note)
    else:
        task = queue.force_release(ctx.store, a.task, base.now(), base.person(), a.note)
    ctx.emit(task, lambda: f"force-released {task.id}: back to {task.state} ({a.note})")


def add_report(cli: Commands) -> None:
    p = cli.add("report", cmd_report, "report the result of a claimed task")
    _lease_args(p)
    p.add_argument("--status", choices=("done", "failed"), required=True)
    p.add_argument("--result", help="result payload: JSON object, @file, file path or - for stdin")
    p.add_argument("--note", help="one line for people, kept on the task")
    p.add_argument("--key", help="idempotency key (default: TASK@EPOCH)")
    p.add_argument(
        "--findings", help="findings to record with the result: JSON list, @FILE or FILE"
    )


def cmd_report(ctx: Context) -> None:
    from swarm.core.limits import MAX_RESULT_BYTES
    from swarm.facts.findings import parse_findings
    from swarm.queue import queue

    a = ctx.args
    payload = base.read_json(a.result, "result", MAX_RESULT_BYTES)
    findings = parse_findings(base.read_json_list(a.findings)) if a.findings else []
    if ctx.remote:
        result = ctx.remote.report(a.task, a.epoch, a.status, payload, a.note, a.key, findings)
    else:
        result = queue.report(
            ctx.store,
            a.task,
            a.epoch,
            a.status,
            base.now(),
            payload,
            a.note,
            a.key,
            findings,
            agent=base.agent(a),
        )
    ctx.emit(result, lambda: f"{a.task}: {result.status} (result {result.id})")


def add_ls(cli: Commands) -> None:
    p = cli.add("ls", cmd_ls, "list tasks")
    p.add_argument("--state", action="append", help="pending, claimed, done, failed, cancelled")
    p.add_argument("--kind", action="append")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--after", help="cursor: the last id of the previous page")


def cmd_ls(ctx: Context) -> None:
    from swarm.present import render
    from swarm.queue import queue

    a = ctx.args
    if ctx.remote:  # the server lists summaries, at most 100 a page
        rows, more = ctx.remote.list_tasks(a.state or (), a.kind or (), min(a.limit, 100), a.after)
        ctx.emit(
            {"tasks": [t.model_dump(mode="json") for t in rows], "next_cursor": more},
            lambda: render.tasks(rows) + (f"\n(more: --after {more})" if more else ""),
        )
        return
    items = queue.list_tasks(ctx.store, a.state or (), a.kind or (), a.limit, a.after)
    cursor = items[-1].id if len(items) == a.limit else None
    ctx.emit(
        {"tasks": [t.model_dump(mode="json") for t in items], "next_cursor": cursor},
        lambda: render.tasks(items) + (f"\n(more: --after {cursor})" if cursor else ""),
    )


def add_show(cli: Commands) -> None:
    p = cli.add("show", cmd_show, "one task in full, with its results")
    p.add_argument("task")


def cmd_show(ctx: Context) -> None:
    from swarm.present import render
    from swarm.queue import queue

    if ctx.remote:
        task, results = ctx.remote.get_task(ctx.args.task)
    else:
        task = queue.get_task(ctx.store, ctx.args.task)
        results = queue.task_results(ctx.store, task.id)
    ctx.emit(
        {
            "task": task.model_dump(mode="json"),
            "results": [r.model_dump(mode="json") for r in results],
        },
        lambda: render.task(task, results),
    )


def add_log(cli: Commands) -> None:
    p = cli.add("log", cmd_log, "a task's event history")
    p.add_argument("task")


def cmd_log(ctx: Context) -> None:
    from swarm.present import render
    from swarm.queue import queue

    items = queue.task_events(ctx.store, ctx.args.task)
    ctx.emit({"events": [e.model_dump() for e in items]}, lambda: render.events(items))


def add_status(cli: Commands) -> None:
    cli.add("status", cmd_status, "the board: deployments, states by kind, claimed tasks")


def cmd_status(ctx: Context) -> None:
    from swarm.core.settings import repo_root
    from swarm.lab.hooks import installation_problems
    from swarm.present import render
    from swarm.present.board import board

    root = repo_root(Path.cwd())
    b = board(ctx.store, base.now())
    b = b.model_copy(update={"warnings": tuple(installation_problems(root)) if root else ()})
    ctx.emit(b, lambda: render.board(b))


def add_reap(cli: Commands) -> None:
    cli.add("reap", cmd_reap, "return expired leases to the queue (claims also do this)")


def cmd_reap(ctx: Context) -> None:
    from swarm.queue import queue

    items = queue.reap(ctx.store, base.now())
    ctx.emit(
        {"reclaimed": [r.model_dump() for r in items]},
        lambda: (
            "\n".join(
                f"{r.task_id}: lease of {r.holder} (epoch {r.epoch}) expired -> {r.new_state}"
                for r in items
            )
            or "no expired leases"
        ),
    )


def register(cli: Commands) -> None:
    for add in (add_init, add_add, add_claim, add_heartbeat, add_release, add_report, add_ls):
        add(cli)
    for add in (add_show, add_log, add_status, add_reap):
        add(cli)
