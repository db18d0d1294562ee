"""The `swarm` command: a thin adapter that parses, calls one library function and renders.

Imports stay inside the command functions so that `swarm claim` pays only for what it uses.
Exit codes: 0 ok, 1 error, 2 usage, 3 nothing claimable, 4 lease lost, 5 not found,
6 duplicate/conflict, 7 invalid input, 8 store unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from pydantic import BaseModel

    from swarm.core.settings import Settings
    from swarm.db.store import Store
    from swarm.queue.remote import RemoteLab

EXIT_CODES_HELP = """exit codes:
  0 ok   1 error   2 usage   3 nothing claimable   4 lease lost
  5 not found   6 duplicate or conflict   7 invalid input   8 store unavailable"""


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- plumbing


REMOTE_COMMANDS = ("add", "claim", "heartbeat", "release", "report", "ls", "show", "agent register")


class Context:
    """What every command gets: parsed args, settings resolved once, the store opened once."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.exit_code = 0
        self._store: Store | None = None
        self._remote: RemoteLab | None = None

    @property
    def settings(self) -> Settings:
        from swarm.core.settings import load_settings

        return load_settings(self.args.db)

    @property
    def remote(self) -> RemoteLab | None:
        """The lab through `swarm serve --http`, when --server (or SWARM_SERVER) names one."""
        server = self.args.server or os.environ.get("SWARM_SERVER")
        if not server or self._remote is not None:
            return self._remote
        if self.args.server and self.args.db:
            raise UsageError("give --server (a remote lab) or --db (a database here), not both")
        from swarm.queue.remote import RemoteLab

        token = self.args.token or os.environ.get("SWARM_TOKEN")
        if not token:
            raise UsageError(
                "--server needs the token `swarm serve --http` printed: --token or SWARM_TOKEN"
            )
        agent = getattr(self.args, "agent", None) or os.environ.get("SWARM_AGENT")
        self._remote = RemoteLab(server, token, agent)
        return self._remote

    @property
    def store(self) -> Store:
        if self.args.server or os.environ.get("SWARM_SERVER"):
            raise UsageError(
                f"`swarm {self.args.command}` needs the lab database; through --server only "
                f"{', '.join(REMOTE_COMMANDS)} work (drop --server/SWARM_SERVER on a host that "
                "has the database)"
            )
        if self._store is None:
            from swarm.db.store import open_store

            self._store = open_store(self.settings.db)
        return self._store

    def emit(self, model: BaseModel | dict[str, Any], text: Callable[[], str]) -> None:
        if self.args.json:
            if isinstance(model, dict):
                from swarm import SCHEMA_VERSION

                print(strict_json({"schema_version": SCHEMA_VERSION, **model}))
            else:
                print(model.model_dump_json())  # pydantic writes NaN/inf as null
        else:
            print(text())


def strict_json(value: Any) -> str:
    """JSON that any parser reads: a NaN or infinity (a row stored before the limits) is null."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except ValueError:
        return json.dumps(_finite_only(value), sort_keys=True, allow_nan=False)


def _finite_only(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_only(v) for v in value]
    return value


def _agent(args: argparse.Namespace) -> str:
    agent = getattr(args, "agent", None) or os.environ.get("SWARM_AGENT")
    if not agent:
        raise UsageError("name the agent: --agent NAME or SWARM_AGENT=NAME")
    return str(agent)


def _read_text(source: str, field: str, max_bytes: int) -> str:
    """The text of '-' (stdin), '@FILE' or a file path; InvalidInput naming field when it is
    missing, unreadable, not UTF-8 or larger than max_bytes (read no further than that)."""
    from swarm.core.errors import InvalidInput

    where = "stdin" if source == "-" else source.removeprefix("@")
    try:
        if source == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with Path(where).open("rb") as file:
                data = file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise InvalidInput(f"{field} must be at most {max_bytes} bytes (got more in {where})")
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{field} must be UTF-8 text ({where}: {exc.reason} at byte {exc.start})"
        ) from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInput(f"cannot read {field} from {where!a}: {reason}") from exc


def _read_any_json(source: str, field: str, max_bytes: int) -> Any:
    """JSON from a literal, '@FILE', a file path or '-' (stdin), under the limits."""
    from swarm.core.limits import parse_json

    literal = source.lstrip().startswith(("{", "["))
    if source == "-" or source.startswith("@") or (not literal and _is_file(source)):
        source = _read_text(source, field, max_bytes)
    return parse_json(source, field, max_bytes)


def _is_file(source: str) -> bool:
    try:
        return Path(source).is_file()
    except (OSError, ValueError):  # a NUL byte or an over-long name: not a file we can read
        return False


def _read_json_list(source: str, field: str = "findings") -> list[Any]:
    from swarm.core.limits import MAX_RESULT_BYTES

    value = _read_any_json(source, field, MAX_RESULT_BYTES)
    return value if isinstance(value, list) else [value]


def _read_json(
    source: str | None, field: str = "spec", max_bytes: int | None = None
) -> dict[str, Any]:
    """JSON object from a literal, '@file', a file path or '-' (stdin)."""
    from swarm.core.errors import InvalidInput
    from swarm.core.limits import MAX_SPEC_BYTES

    if source is None:
        return {}
    value = _read_any_json(source, field, max_bytes or MAX_SPEC_BYTES)
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object (got {type(value).__name__})")
    return value


# ---------------------------------------------------------------- commands


def cmd_init(ctx: Context) -> None:
    from swarm.core.settings import repo_root
    from swarm.queue.catalog import load_catalog

    folder = ctx.args.catalog or (repo_root(Path.cwd()) or Path.cwd()) / "tasks"
    report = load_catalog(ctx.store, Path(folder), _now())
    ctx.emit(
        {"db": ctx.store.location, **report.model_dump()},
        lambda: (
            f"lab database: {ctx.store.location}\ncatalog: {', '.join(report.files) or 'none'} "
            f"({report.added} tasks added, {report.skipped} already present)"
        ),
    )


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
        spec=_read_json(a.spec),
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
        task = queue.add_task(ctx.store, new, _now(), actor=os.environ.get("SWARM_AGENT", "cli"))
    ctx.emit(task, lambda: f"added {task.id}\n" + render.task(task))


def cmd_claim(ctx: Context) -> None:
    from swarm.core.errors import UnknownAgent
    from swarm.present import render
    from swarm.queue import queue

    agent, kinds = _agent(ctx.args), ctx.args.kind or None
    if ctx.remote:  # the server's lease length unless --lease
        claim = ctx.remote.claim(ctx.args.lease, kinds)
        ctx.emit(claim, lambda: render.claim(claim))
        return
    lease = ctx.settings.lease_seconds if ctx.args.lease is None else ctx.args.lease
    try:
        claim = queue.claim(ctx.store, agent, _now(), lease, kinds)
    except UnknownAgent:
        _register(ctx, agent)  # first claim of a new agent: register what this host has
        claim = queue.claim(ctx.store, agent, _now(), lease, kinds)
    ctx.emit(claim, lambda: render.claim(claim))


def cmd_heartbeat(ctx: Context) -> None:
    from swarm.queue import queue

    a = ctx.args
    if ctx.remote:
        lease = ctx.remote.heartbeat(a.task, a.epoch, a.lease)
    else:
        seconds = ctx.settings.lease_seconds if a.lease is None else a.lease
        lease = queue.heartbeat(ctx.store, a.task, a.epoch, _now(), seconds)
    ctx.emit(lease, lambda: f"{a.task}: lease (epoch {lease.epoch}) extended to {lease.expires_at}")


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
        task = queue.release(ctx.store, a.task, a.epoch, _now(), a.note)
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
        task = queue.force_release(ctx.store, a.task, _now(), _who(a), a.note)
    ctx.emit(task, lambda: f"force-released {task.id}: back to {task.state} ({a.note})")


def cmd_report(ctx: Context) -> None:
    from swarm.core.limits import MAX_RESULT_BYTES
    from swarm.facts.findings import parse_findings
    from swarm.queue import queue

    a = ctx.args
    payload = _read_json(a.result, "result", MAX_RESULT_BYTES)
    findings = parse_findings(_read_json_list(a.findings)) if a.findings else []
    if ctx.remote:
        result = ctx.remote.report(a.task, a.epoch, a.status, payload, a.note, a.key, findings)
    else:
        result = queue.report(
            ctx.store, a.task, a.epoch, a.status, _now(), payload, a.note, a.key, findings
        )
    ctx.emit(result, lambda: f"{a.task}: {result.status} (result {result.id})")


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


def cmd_log(ctx: Context) -> None:
    from swarm.present import render
    from swarm.queue import queue

    items = queue.task_events(ctx.store, ctx.args.task)
    ctx.emit({"events": [e.model_dump() for e in items]}, lambda: render.events(items))


def cmd_status(ctx: Context) -> None:
    from swarm.core.settings import repo_root
    from swarm.lab.hooks import installation_problems
    from swarm.present import render
    from swarm.present.board import board

    root = repo_root(Path.cwd())
    b = board(ctx.store, _now())
    b = b.model_copy(update={"warnings": tuple(installation_problems(root)) if root else ()})
    ctx.emit(b, lambda: render.board(b))


def cmd_reap(ctx: Context) -> None:
    from swarm.queue import queue

    items = queue.reap(ctx.store, _now())
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


def _parse_gpu(text: str, index: int) -> Any:
    from swarm.core.errors import InvalidInput
    from swarm.core.models import GpuInfo

    parts = text.split(":")
    try:
        name, arch, gb = parts
        return GpuInfo(
            index=index,
            name=name,
            uuid=f"manual-{index}-{name}",
            arch=arch,
            memory_total_gb=float(gb),
        )
    except ValueError as exc:
        raise InvalidInput(
            f"--gpu wants NAME:ARCH:GB such as 'RTX Pro 6000:sm_120:96', got {text!r}"
        ) from exc


def _register(ctx: Context, agent: str) -> Any:
    from swarm.queue import agents
    from tools.capabilities import detect

    a = ctx.args
    gpus = None
    if getattr(a, "no_gpu", False):
        gpus = ()
    elif getattr(a, "gpu", None):
        gpus = tuple(_parse_gpu(text, i) for i, text in enumerate(a.gpu))
    tools = tuple(a.tool) if getattr(a, "tool", None) else None
    caps = detect(host=getattr(a, "host", None), gpus=gpus, tools=tools)
    if getattr(a, "driver", None) or getattr(a, "engine", None):
        from swarm.core.models import Capabilities

        engines = {k: str(v) for k, v in _pairs(a.engine or (), "--engine").items()}
        caps = Capabilities.model_validate(
            {**caps.model_dump(), "driver": a.driver, "engines": engines}
        )
    if ctx.remote:
        return ctx.remote.register(caps)
    return agents.register(ctx.store, agent, caps, _now())


def cmd_agent_register(ctx: Context) -> None:
    from swarm.present import render

    agent = _register(ctx, _agent(ctx.args))
    ctx.emit(agent, lambda: "registered " + render.agent(agent))


def cmd_agent_token(ctx: Context) -> None:
    """Issue, list or revoke the bearer tokens agents (and people) present to `swarm serve --http`."""
    from swarm.queue import auth

    a = ctx.args
    if a.list:
        tokens = auth.list_tokens(ctx.store)
        ctx.emit(
            {"tokens": [t.model_dump(mode="json") for t in tokens]},
            lambda: (
                "\n".join(f"{t.name}  {t.role}  since {t.created_at}" for t in tokens)
                or "no tokens (the operator's is the lab dir's http_token)"
            ),
        )
        return
    if a.revoke:
        gone = auth.revoke_token(ctx.store, a.revoke)
        ctx.emit(gone, lambda: f"revoked {gone.name}'s token: its requests now get 401")
        return
    if not a.name:
        raise UsageError("give NAME (a new token), --list or --revoke NAME")
    issued = auth.issue_token(ctx.store, a.name, _now(), auth.Role(a.role))
    ctx.emit(
        issued,
        lambda: (
            f"{issued.token}\n(a {issued.role} token for {issued.name}, shown once; its hash is "
            f"kept. Give it to the agent as SWARM_TOKEN; an older token of {issued.name} stops "
            "working)"
        ),
    )


def cmd_agent_ls(ctx: Context) -> None:
    from swarm.present import render
    from swarm.queue import agents

    items = agents.list_agents(ctx.store)
    ctx.emit(
        {"agents": [a.model_dump() for a in items]},
        lambda: "\n\n".join(render.agent(a) for a in items) or "no agents",
    )


def _scalar(text: str) -> Any:
    """'12.5' -> 12.5, '3' -> 3, 'true'/'false' -> bool, anything else stays text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _pairs(items: Sequence[str], flag: str, typed: bool = True) -> dict[str, Any]:
    """KEY=VALUE pairs; typed: values read as numbers and booleans where they look like them
    (not for a scope, whose normalisers read text: CUDA '12.10' is not the number 12.1)."""
    from swarm.core.errors import InvalidInput

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{flag} wants KEY=VALUE, got {item!r}")
        out[key.strip()] = _scalar(value) if typed else value.strip()
    return out


def _finding_items(a: argparse.Namespace) -> list[Any]:
    from swarm.facts.findings import parse_findings

    if a.file:
        return parse_findings(_read_json_list(a.file if a.file == "-" else "@" + a.file))
    missing = [
        flag
        for flag, v in (
            ("--subject", a.subject),
            ("--predicate", a.predicate),
            ("--value", a.value),
        )
        if v is None
    ]
    if missing:
        raise UsageError(f"swarm finding add: give {', '.join(missing)} (or --file FINDINGS.json)")
    evidence = [_read_json(e, "evidence") for e in a.evidence]
    return parse_findings(
        [
            {
                "subject": a.subject,
                "predicate": a.predicate,
                "value": _scalar(a.value),
                "unit": a.unit,
                "scope": _pairs(a.scope, "--scope", typed=False),
                "statement": a.statement or f"{a.subject} {a.predicate} = {a.value}",
                "evidence": evidence,
                "attributes": _pairs(a.attr, "--attr"),
            }
        ]
    )


def cmd_finding_add(ctx: Context) -> None:
    from swarm.facts.findings import add_findings, refuse_decisions

    agent = getattr(ctx.args, "agent", None) or os.environ.get("SWARM_AGENT")
    items = _finding_items(ctx.args)
    if agent:  # an agent's findings are claims; decisions are people's (swarm triage)
        refuse_decisions(items, agent)
    elif any(f.decision is not None for f in items):  # a person here: the decider is derived
        by = _who(ctx.args)
        items = [
            f.model_copy(update={"decision": f.decision.model_copy(update={"by": by})})
            if f.decision is not None
            else f
            for f in items
        ]
    added = add_findings(ctx.store, items, agent or _who(ctx.args), _now(), ctx.args.task)
    ctx.emit(
        {"findings": [f.model_dump(mode="json") for f in added]},
        lambda: "\n".join(f"recorded {f.id}: {f.statement}" for f in added),
    )


def cmd_finding_ls(ctx: Context) -> None:
    from swarm.facts.findings import load_findings
    from swarm.present import render

    a = ctx.args
    found, bad = load_findings(ctx.store)
    items = [
        f
        for f in found
        if (not a.subject or f.subject == a.subject)
        and (not a.predicate or f.predicate == a.predicate)
    ]
    ctx.emit(
        {
            "findings": [f.model_dump(mode="json") for f in items],
            "bad_rows": [b.model_dump() for b in bad],
        },
        lambda: (
            render.table(
                ("ID", "SUBJECT", "PREDICATE", "VALUE", "AGENT"),
                [(f.id, f.subject, f.predicate, f.value, f.agent) for f in items],
            )
            + "".join(f"\nbad row {b.id} (skipped): {b.error}" for b in bad)
        ),
    )


def cmd_facts_import_seed(ctx: Context) -> None:
    from swarm.facts.findings import add_findings
    from swarm.lab.seed import SEED_AGENT, seed_findings

    before = len(ctx.store.read(lambda c: c.execute("SELECT id FROM findings").fetchall()))
    items = add_findings(ctx.store, seed_findings(_repo()), SEED_AGENT, _now())
    added = len(ctx.store.read(lambda c: c.execute("SELECT id FROM findings").fetchall())) - before
    ctx.emit(
        {"findings": len(items), "added": added},
        lambda: f"seed: {len(items)} findings ({added} new) from the seed document and catalog",
    )


def cmd_facts_verify(ctx: Context) -> None:
    from swarm.lab import pipeline as facts

    checks, bad = facts.verify(ctx.store, _repo())
    rows = [
        {"finding": fid, "evidence": idx, **c.model_dump(mode="json")}
        for (fid, idx), c in sorted(checks.items())
    ]
    shown = rows if ctx.args.all else [r for r in rows if r["status"] != "ok"]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    # CI gates on this: a broken citation, or a stored finding that no longer parses, fails it
    ctx.exit_code = 1 if counts.get("broken") or bad else 0

    def text() -> str:
        from swarm.present import render

        table = render.table(
            ("FINDING", "#", "STATUS", "PROVES", "MESSAGE"),
            [
                (r["finding"], r["evidence"], r["status"], r["strength"] or "context", r["message"])
                for r in shown
            ],
        )
        bad_lines = "".join(f"bad row {b.id}: {b.error}\n" for b in bad)
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no citations"
        return (table + "\n" if shown else "") + bad_lines + summary

    ctx.emit({"counts": counts, "checks": shown, "bad_rows": [b.model_dump() for b in bad]}, text)


def cmd_facts_repair(ctx: Context) -> None:
    from swarm.facts.findings import repair_log
    from swarm.lab import pipeline as facts

    path = _repo() / "facts" / facts.LOG
    repaired = repair_log(path)
    line, aside = repaired if repaired else (None, None)
    ctx.emit(
        {"log": str(path), "torn_line": line, "moved_to": str(aside) if aside else None},
        lambda: (
            f"{path}: line {line} was torn; moved to {aside}, the whole lines kept"
            if repaired
            else f"{path} is whole; nothing to repair"
        ),
    )


def cmd_facts_reconcile(ctx: Context) -> None:
    from swarm.lab import pipeline as facts
    from swarm.present import render

    a = ctx.args
    outcome = facts.run(
        None if a.from_log else ctx.store, _repo(), write=not a.check, cache=_facts_cache(ctx)
    )
    if a.check:
        current = _repo() / "facts" / facts.FACTS
        stale = not current.exists() or current.read_text(encoding="utf-8") != facts.facts_text(
            outcome.facts
        )
        ctx.emit(
            {"up_to_date": not stale},
            lambda: (
                "facts/verified_facts.json is out of date: run `swarm facts reconcile`"
                if stale
                else "facts/verified_facts.json is up to date"
            ),
        )
        ctx.exit_code = 1 if stale else 0
        return
    synced = None
    if not a.from_log:  # conflicts create their own resolution work (swarm/lab/replication.py)
        from swarm.lab import replication

        synced = replication.sync(
            ctx.store, outcome.facts, outcome.checks, _now(), a.max_replications
        )
    ctx.emit(
        {
            "changed": list(outcome.changed),
            "facts": len(outcome.facts.facts),
            "open_conflicts": sum(c.state == "open" for c in outcome.facts.conflicts),
            "replications": synced.model_dump() if synced else None,
        },
        lambda: (
            render.facts_summary(outcome.facts, outcome.changed)
            + (render.sync_summary(synced) if synced else "")
        ),
    )


def _facts_cache(ctx: Context) -> Path:
    return Path(ctx.settings.lab_dir) / "facts-cache"


def _triage_conflicts(ctx: Context) -> Any:
    from swarm.lab import triage

    return triage.conflicts(ctx.store, _repo(), _facts_cache(ctx))


def cmd_triage_list(ctx: Context) -> None:
    from swarm.lab import replication
    from swarm.lab.triage import findings_by_id
    from swarm.present import render

    # deferred disputes stay listed: deferring is not deciding
    conflicts = [
        c for c in _triage_conflicts(ctx) if ctx.args.all or c.state in ("open", "deferred")
    ]
    work = replication.for_conflicts(ctx.store, conflicts)

    def shown(c: Any) -> dict[str, Any]:
        row = work.get(c.id)
        return {**c.model_dump(mode="json"), "replication": row.model_dump() if row else None}

    def text() -> str:  # the findings are read only for people, and only those on the sides
        ids = [fid for c in conflicts for side in c.sides for fid in side.findings]
        by_id = findings_by_id(ctx.store, ids)
        return (
            "\n\n".join(
                render.conflict(c, by_id)
                + (f"\n  {replication.describe(work[c.id])}" if c.id in work else "")
                for c in conflicts
            )
            or "no open conflicts"
        )

    ctx.emit({"conflicts": [shown(c) for c in conflicts]}, text)


def cmd_triage_cancel(ctx: Context) -> None:
    from swarm.lab import replication

    a = ctx.args
    conflicts = tuple(_triage_conflicts(ctx))
    row = replication.cancel(ctx.store, conflicts, a.conflict, a.reason, _who(a), _now())
    ctx.emit(row, lambda: f"{a.conflict}: {replication.describe(row)}")


def _who(a: argparse.Namespace) -> str:
    """The person at this CLI: --by, else the git identity `user.name <user.email>`."""
    from swarm.queue.auth import git_identity

    if getattr(a, "by", None):
        return str(a.by)
    person = git_identity()
    if person is None:
        raise UsageError(
            "who is deciding? set `git config user.name` and `user.email`, or pass --by NAME"
        )
    return person


def cmd_triage_resolve(ctx: Context) -> None:
    from swarm.lab import triage

    a = ctx.args
    action: triage.Action = (
        "accept" if a.accept else "reject" if a.reject else "defer" if a.defer else "split"
    )
    finding = triage.decide(
        ctx.store,
        _repo(),
        a.conflict,
        action,
        a.reason,
        _who(a),
        _now(),
        accept=tuple(a.accept or ()),
        split_by=a.split_by,
        cache=_facts_cache(ctx),
    )
    ctx.emit(
        finding,
        lambda: (
            f"recorded {finding.id}: {action} {a.conflict} ({a.reason}); "
            "run `swarm facts reconcile` to apply it to facts/"
        ),
    )


def cmd_triage_undo(ctx: Context) -> None:
    from swarm.lab import triage

    a = ctx.args
    finding = triage.undo(ctx.store, a.decision, a.reason, _who(a), _now())
    ctx.emit(
        finding,
        lambda: (
            f"recorded {finding.id}: undo {a.decision} ({a.reason}); "
            "run `swarm facts reconcile` to apply it to facts/"
        ),
    )


def cmd_triage(ctx: Context) -> None:
    """Interactive triage for people: each open conflict, then a decision."""
    from swarm.lab import triage
    from swarm.present import render

    if not (ctx.args.interactive or sys.stdin.isatty()):
        return cmd_triage_list(ctx)
    open_ = [c for c in _triage_conflicts(ctx) if c.state == "open"]
    by_id = triage.findings_by_id(
        ctx.store, [f for c in open_ for s in c.sides for f in s.findings]
    )
    for conflict in open_:
        print(render.conflict(conflict, by_id), end="\n\n")
        choice = (
            input("accept side N [1-9] / r reject all / s split / d defer / n next / q quit: ")
            .strip()
            .lower()
        )
        if choice in ("q", ""):
            break
        if choice == "n":
            continue
        split_by = input("split by which attribute? ").strip() if choice == "s" else None
        reason = input("why? ").strip()
        accept: tuple[str, ...] = ()
        actions: dict[str, triage.Action] = {"r": "reject", "s": "split", "d": "defer"}
        action: triage.Action | None = actions.get(choice)
        if choice.isdigit() and 1 <= int(choice) <= len(conflict.sides):
            action, accept = "accept", conflict.sides[int(choice) - 1].findings
        if not action:
            print(f"unknown choice {choice!r}; skipped")
            continue
        finding = triage.decide(
            ctx.store,
            _repo(),
            conflict.id,
            action,
            reason,
            _who(ctx.args),
            _now(),
            accept=accept,
            split_by=split_by,
            cache=_facts_cache(ctx),
        )
        print(f"recorded {finding.id}\n")


def cmd_search(ctx: Context) -> None:
    from swarm.db import search
    from swarm.present import render

    a = ctx.args
    found = search.search(ctx.store, a.text, a.kind or (), a.limit)
    ctx.emit(found, lambda: render.search_results(found))


def cmd_export(ctx: Context) -> None:
    from swarm.db import export

    a = ctx.args
    if a.output in (None, "-"):
        export.export(ctx.store, a.table, a.format, sys.stdout)
        return
    from typing import TextIO, cast

    from swarm.core.atomic import atomic_open

    path = Path(a.output)
    with atomic_open(path) as out:  # a reader sees the whole export or none of it
        rows = export.export(ctx.store, a.table, a.format, cast(TextIO, out))  # text mode
    print(f"wrote {rows} {a.table} rows to {path} ({a.format})", file=sys.stderr)


def cmd_readme(ctx: Context) -> None:
    from swarm.present import readme

    repo = _repo()
    path = Path(ctx.args.file) if ctx.args.file else repo / "README.md"
    current, updated = readme.regenerate(
        ctx.store, repo, path, _now(), ctx.args.force, write=not ctx.args.check
    )
    changed = updated != current
    if ctx.args.check:
        ctx.exit_code = 1 if changed else 0
        ctx.emit(
            {"up_to_date": not changed},
            lambda: (
                f"{path.name} is out of date: run `swarm readme`"
                if changed
                else f"{path.name} is up to date"
            ),
        )
        return
    ctx.emit(
        {"changed": changed}, lambda: f"{path.name} " + ("updated" if changed else "unchanged")
    )


def cmd_kernel_build(ctx: Context) -> None:
    from swarm.present import render
    from tools.kernel_build import build_and_test

    a, repo = ctx.args, _repo()
    report = build_and_test(
        repo / "kernels",
        ctx.settings.lab_dir / "kernel-cache",
        tuple(a.name),
        tuple(a.arch) if a.arch else None,
        a.test,
    )
    ctx.exit_code = 0 if report.ok else 1
    ctx.emit(report, lambda: render.kernel_report(report))


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
            added.append(queue.add_task(ctx.store, new, _now(), actor="swarm work").id)
    return added


def _worker_loop(ctx: Context, name: str, kinds: tuple[str, ...]) -> Any:
    import signal
    import threading

    from swarm.queue import worker

    a, repo = ctx.args, _repo()
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


def cmd_work(ctx: Context) -> None:
    import socket
    import subprocess

    from swarm.core.limits import Workers, check
    from swarm.queue import agents
    from swarm.queue.catalog import load_catalog
    from swarm.queue.worker import WorkerSummary, waiting_reasons
    from tools.capabilities import detect
    from tools.executors import DEFAULT_KINDS, EXECUTORS

    check(Workers, ctx.args.agents, "--agents")  # before anything is queued or registered
    a, repo = ctx.args, _repo()
    kinds = tuple(k for k in (a.kind or DEFAULT_KINDS) if k in EXECUTORS)
    if not kinds:
        raise UsageError(
            f"none of {', '.join(a.kind)} has an executor on this host; these do: {', '.join(EXECUTORS)}"
        )
    if a.worker:  # one worker process started by the parent below
        summary = _worker_loop(ctx, a.worker, kinds)
        print(summary.model_dump_json())
        return
    load_catalog(ctx.store, repo / "tasks", _now())
    queued = [] if a.no_maintenance else _maintenance_tasks(ctx, kinds)
    if a.runtime:  # the jobs are processes: they read it from their environment
        from tools.lab_deploy import RUNTIME_ENV

        os.environ[RUNTIME_ENV] = a.runtime
    declared = tuple(_parse_gpu(text, i) for i, text in enumerate(a.gpu or []))
    caps = detect(gpus=declared) if declared else detect()
    names = [f"{a.name or 'work'}-{socket.gethostname()}-{i}" for i in range(a.agents)]
    for name in names:
        agents.register(ctx.store, name, caps, _now())
    if not a.json:
        gpus = ", ".join(f"{g.name} ({g.arch})" for g in caps.gpus) or f"none ({caps.gpu_note})"
        print(
            f"lab {ctx.store.location}: {len(names)} worker(s) for {', '.join(kinds)}; GPUs: {gpus}; "
            f"tools: {', '.join(caps.tools) or 'none'}"
            + (f"; queued {', '.join(queued)}" if queued else ""),
            flush=True,
        )
    if a.agents == 1:
        summaries = [_worker_loop(ctx, names[0], kinds)]
    else:
        argv = [sys.executable, "-m", "swarm.cli", "work", "--json", "--worker"]
        flags = (
            [f for k in kinds for f in ("--kind", k)]
            + (["--once"] if a.once else [])
            + (["--until-idle"] if a.until_idle else [])
            + (["--lease", str(a.lease)] if a.lease else [])
            + (["--db", a.db] if a.db else [])
        )
        procs = [
            subprocess.Popen([*argv, n, *flags], stdout=subprocess.PIPE, text=True) for n in names
        ]
        import signal

        def forward(signum: int, _frame: object) -> None:
            for proc in procs:
                proc.send_signal(
                    signum
                )  # each worker releases its lease and leaves its job running

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, forward)
        summaries = [
            WorkerSummary.model_validate_json(p.communicate()[0].strip().splitlines()[-1])
            for p in procs
        ]
    _work_summary(ctx, summaries, waiting_reasons(ctx.store, names[0], kinds))


def _work_summary(ctx: Context, summaries: list[Any], waiting: str) -> None:
    from swarm.present import readme

    ran = [t for s in summaries for t in s.ran]
    facts = readme.load_facts(_repo() / "facts" / "verified_facts.json")
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
    resolution = lab_deploy.resolve_task(task, _repo(), inventory, arch=a.arch, runtime=a.runtime)
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
        try:
            actor = _who(a)  # the person stopping it, when git knows them
        except UsageError:
            actor = "swarm deploy --down"
        released = queue.release_server(ctx.store, a.task, _now(), actor, why)
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
    if a.shared_tenancy:
        total = _gpu_total(a, configs[0].gpus)
        if total is None:
            raise UsageError(
                "no GPU inventory here to check the memory budget against: pass --gpu-total-gb N"
            )
        plans, summary = deploy.shared_tenancy(configs, total, [Path(d) for d in a.dir])
    else:
        if len(configs) > 1:
            raise UsageError("several deployment directories need --shared-tenancy (or --down)")
        total = _gpu_total(a, configs[0].gpus)
        plans, summary = [deploy.plan(configs[0], total, folder=Path(a.dir[0]))], ""
    if a.dry_run or a.generate:
        if a.generate:
            paths = [
                str(deploy.write_compose(Path(d), c, p))
                for d, c, p in zip(a.dir, configs, plans, strict=True)
            ]
        body = {"plans": [p.model_dump(mode="json") for p in plans], "memory": summary}
        if a.generate:
            body["written"] = paths
        print(
            deploy.redact(json.dumps(body, indent=None if a.json else 2, sort_keys=True), secrets)
        )
        return
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


def cmd_bench(ctx: Context) -> None:
    import asyncio

    from swarm.core.errors import InvalidInput
    from tools import benchmark
    from tools.bench_client import Target
    from tools.bench_lab import probe, server_version

    a = ctx.args
    try:
        levels = [int(p) for p in a.concurrency.split(",")] if a.concurrency else [1]
    except ValueError as exc:
        raise UsageError(f"--concurrency takes a list like 1,2,4: {exc}") from exc
    if any(p < 1 for p in levels) or a.output_len < 1 or a.input_len < 1:
        raise UsageError("--concurrency, --input-len and --output-len must be positive")
    if not 0 <= a.max_error_rate <= 1 or (a.timeout is not None and a.timeout <= 0):
        raise UsageError("--max-error-rate is a share from 0 to 1 and --timeout must be positive")
    try:
        Target.from_url(a.endpoint, "")
        if a.tokenizer:
            benchmark.tokenizer_counter(a.tokenizer)  # a bad path fails now, not after the run
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    kind, served = (
        probe(a.endpoint) if a.server_kind == "auto" or not a.model else (a.server_kind, None)
    )
    if not (a.model or served):
        raise InvalidInput(f"{a.endpoint}/v1/models names no model: pass --model")
    try:
        config = benchmark.BenchConfig(
            endpoint=a.endpoint, model=a.model or served, server_kind=kind if a.server_kind == "auto"
            else a.server_kind, concurrency=levels, rate=a.rate,
            burstiness=a.burstiness, input_len=a.input_len, output_len=a.output_len,
            requests=a.requests, duration_s=a.duration, warmup=a.warmup, seed=a.seed,
            timeout_s=a.timeout, max_error_rate=a.max_error_rate, knee_gain=a.knee_gain, ttft_stop_ms=a.ttft_stop_ms,
            slo=benchmark.Slo(ttft_ms=a.slo_ttft_ms, tpot_ms=a.slo_tpot_ms, e2el_ms=a.slo_e2el_ms),
            lab=_pairs(a.lab, "--lab"), per_process=a.per_process, server_version=server_version(a.endpoint),
            tokenizer=a.tokenizer, per_request=a.per_request,
        )  # fmt: skip
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    tty = sys.stderr.isatty()
    say = (lambda m: print(f"\r\033[K{m}", file=sys.stderr, flush=True)) if tty else None
    if a.calibrate:
        if say:
            say(f"calibrating the client at c={max(levels)} against the zero-latency fake server")
        config.client_ceiling_tok_s = round(benchmark.calibrate(max(levels), a.output_len), 1)
    report = asyncio.run(benchmark.run(config, say, _bench_bar if tty else None))
    if a.out:
        from swarm.core.atomic import write_text

        write_text(Path(a.out), report.model_dump_json(indent=2) + "\n")
    if a.plot:
        from tools.bench_plot import write_sweep_png

        write_sweep_png(report, Path(a.plot))
    if a.save_result:
        from swarm.core.atomic import write_text as write_file
        from tools.bench_vllm import file_name

        for lv in report.levels:
            write_file(Path(a.save_result) / file_name(lv.vllm), json.dumps(lv.vllm, indent=2))
    ctx.emit(report, lambda: _bench_table(report))
    if not any(lv.valid for lv in report.levels):  # no number the lab could stand behind
        ctx.exit_code = 1


def _bench_bar(label: str, done: int, total: int | None) -> None:
    """The running level on one terminal line: a bar when the request count is known."""
    if total:
        filled = 30 * min(done, total) // total
        line = f"{label:>10} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}"
    else:
        line = f"{label:>10} {done} requests"
    print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)


def _bench_table(report: Any) -> str:
    head = f"{'load':>12} {'ok':>5} {'fail':>5} {'out tok/s':>10} {'TTFT p50':>9} {'TPOT p50':>9} "
    head += f"{'ITL p99':>8} {'conc':>5}  notes"
    rows = [head]
    for lv in report.levels:
        m = lv.metrics
        notes = ", ".join(
            ([f"INVALID ({lv.invalid_reason})"] if not lv.valid else [])
            + [f"{k} x{v}" for k, v in lv.error_counts.items()]
            + ([f"{lv.length_mismatch_count} length mismatches"] if lv.length_mismatch_count else [])
            + (["client-limited"] if lv.client_limited else [])
            + ([f"tokens from {', '.join(lv.token_count_source)}"] if lv.completed and "usage" not in lv.token_count_source else [])
        )  # fmt: skip
        rows.append(
            f"{lv.load:>12} {lv.completed:>5} {lv.failed:>5} {lv.output_throughput:>10.1f} "
            f"{m.get('median_ttft_ms', 0):>9.1f} {m.get('median_tpot_ms', 0):>9.2f} "
            f"{m.get('p99_itl_ms', 0):>8.2f} {lv.realized_concurrency:>5.1f}  {notes}"
        )
    s = report.summary
    rows.append(f"single TPS {s.get('single_tps')}; batched {s.get('batched_tps')}; "
                f"knee {(s.get('knee') or {}).get('concurrency')}")  # fmt: skip
    if report.stopped_early:
        rows.append(f"stopped early: {report.stopped_early}")
    return "\n".join(rows)


def cmd_migrate(ctx: Context) -> None:
    from swarm.core.settings import resolve_db
    from swarm.db.store import open_store
    from swarm.db.transfer import copy_lab

    target = open_store(resolve_db(ctx.args.to, {}, Path.cwd()))
    try:
        report = copy_lab(ctx.store, target)
    finally:
        target.close()
    ctx.emit(
        report,
        lambda: "\n".join(
            [f"copied {report.source} -> {report.target}"]
            + [f"  {t.table:<16} {t.rows:>8} rows  sha256 {t.sha256[:16]}" for t in report.tables]
            + [f"verified: {report.rows} rows; counts and checksums agree on both sides"]
        ),
    )


def cmd_serve(ctx: Context) -> None:
    a = ctx.args
    if a.http:
        from swarm.core.limits import Port, check
        from swarm.mcp import http as mcp_http

        port = check(Port, a.port, "--port")
        mcp_http.serve_http(ctx.settings, a.host, port, tuple(a.allowed_host))
    else:
        from swarm.mcp import server as mcp_server

        mcp_server.serve_stdio(ctx.settings)


def _repo() -> Path:
    from swarm.core.errors import InvalidInput
    from swarm.core.settings import repo_root

    root = repo_root(Path.cwd())
    if root is None:
        raise InvalidInput(f"{Path.cwd()} is not inside a git repository")
    return root


def cmd_hooks_install(ctx: Context) -> None:
    from swarm.lab import hooks

    changed = hooks.install(_repo())
    ctx.emit({"changed": changed}, lambda: "\n".join(changed) or "hooks already installed")


def cmd_hooks_check(ctx: Context) -> None:
    import subprocess

    from swarm.core.errors import SwarmError
    from swarm.lab import hooks

    repo = _repo()
    try:
        policy = hooks.Policy.load(repo)
        report = hooks.check_range(policy, ctx.args.revs, cwd=repo)
    except (hooks.PolicyError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise SwarmError(f"cannot check {' '.join(ctx.args.revs)}: {detail.strip()}") from exc
    lines = [f"{sha[:12]}: {p}" for sha, found in report.items() for p in found]
    ctx.emit(
        {"commits": report, "ok": not report},
        lambda: "\n".join(lines) or "every commit in the range is clean",
    )
    if report:
        ctx.exit_code = 1
        if not ctx.args.json:
            print(hooks._fixes(policy), file=sys.stderr)


# ---------------------------------------------------------------- parser


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output (errors too)")
    common.add_argument(
        "--server",
        metavar="URL",
        help="work through a remote `swarm serve --http` (e.g. http://lab:8765/mcp; default: "
        f"SWARM_SERVER) instead of the database: {', '.join(REMOTE_COMMANDS)}",
    )
    common.add_argument("--token", help="the server's bearer token (default: SWARM_TOKEN)")
    common.add_argument(
        "--db",
        help="lab database: a SQLite path or a postgresql:// URL "
        "(default: SWARM_DB, else swarm/swarm.db in the git common dir)",
    )
    return common


def _lease_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", help="task id")
    p.add_argument("--epoch", type=int, required=True, help="the fencing token claim returned")


def build_parser() -> Parser:
    common = _common()
    parser = Parser(
        prog="swarm",
        description="Task queue and lab tools for a swarm of agents.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )

    def command(name: str, fn: Callable[[Context], None], help: str, group: Any = sub) -> Parser:
        p: Parser = group.add_parser(
            name,
            parents=[common],
            help=help,
            description=help,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(fn=fn)
        return p

    p = command("init", cmd_init, "create the lab database (idempotent) and load the task catalog")
    p.add_argument("--catalog", help="catalog folder of *.toml (default: tasks/ of this repo)")

    p = command("add", cmd_add, "queue a task")
    p.add_argument("kind", help="deploy, benchmark, kernel, verify, research or other")
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

    p = command("claim", cmd_claim, "claim the best ready task this agent can run")
    p.add_argument("--agent", help="agent name (default: SWARM_AGENT)")
    p.add_argument("--kind", action="append", help="only this kind (repeatable)")
    p.add_argument(
        "--lease", type=float, help="lease seconds (default: SWARM_LEASE_SECONDS or 600)"
    )

    p = command("heartbeat", cmd_heartbeat, "extend the lease on a claimed task")
    _lease_args(p)
    p.add_argument("--lease", type=float, help="new lease length in seconds")

    p = command("release", cmd_release, "hand a claimed task back to the queue")
    p.add_argument("task", help="task id")
    p.add_argument("--epoch", type=int, help="the fencing token claim returned")
    p.add_argument("--note", help="why, kept on the task")
    p.add_argument(
        "--force",
        action="store_true",
        help="operator: end whoever holds it now (needs --note; recorded in the log)",
    )
    p.add_argument("--by", help="who forces it (default: git user.name <user.email>)")

    p = command("report", cmd_report, "report the result of a claimed task")
    _lease_args(p)
    p.add_argument("--status", choices=("done", "failed"), required=True)
    p.add_argument("--result", help="result payload: JSON object, @file, file path or - for stdin")
    p.add_argument("--note", help="one line for people, kept on the task")
    p.add_argument("--key", help="idempotency key (default: TASK@EPOCH)")
    p.add_argument(
        "--findings", help="findings to record with the result: JSON list, @FILE or FILE"
    )

    p = command("ls", cmd_ls, "list tasks")
    p.add_argument("--state", action="append", help="pending, claimed, done, failed, cancelled")
    p.add_argument("--kind", action="append")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--after", help="cursor: the last id of the previous page")

    p = command("show", cmd_show, "one task in full, with its results")
    p.add_argument("task")
    p = command("log", cmd_log, "a task's event history")
    p.add_argument("task")
    command("status", cmd_status, "the board: deployments, states by kind, claimed tasks")
    command("reap", cmd_reap, "return expired leases to the queue (claims also do this)")

    agent = sub.add_parser("agent", help="register and list agents")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True, parser_class=Parser)
    p = command("register", cmd_agent_register, "record this agent's capabilities", agent_sub)
    p.add_argument("--name", dest="agent", help="agent name (default: SWARM_AGENT)")
    p.add_argument("--host", help="host name (default: this host)")
    p.add_argument("--gpu", action="append", help="NAME:ARCH:GB instead of NVML (repeatable)")
    p.add_argument("--no-gpu", action="store_true", help="register without GPUs")
    p.add_argument("--tool", action="append", help="tool on PATH (default: detected)")
    p.add_argument("--driver", help="GPU driver version (a newer one makes older runs stale)")
    p.add_argument(
        "--engine",
        action="append",
        metavar="NAME=VERSION",
        help="a serving engine and its version, e.g. vllm=0.11.0 (repeatable)",
    )
    command("ls", cmd_agent_ls, "list registered agents", agent_sub)
    p = command(
        "token", cmd_agent_token, "issue, list or revoke agents' HTTP bearer tokens", agent_sub
    )
    p.add_argument(
        "name", nargs="?", help="issue a new token for this agent (replaces its old one)"
    )
    p.add_argument("--list", action="store_true", help="list who has a token (never the tokens)")
    p.add_argument("--revoke", metavar="NAME", help="delete NAME's token")
    p.add_argument(
        "--role",
        choices=("agent", "person"),
        default="agent",
        help="agent (default) or person: a person may also record triage decisions",
    )

    p = command(
        "readme", cmd_readme, "regenerate the README dashboard regions from the store and facts/"
    )
    p.add_argument(
        "--check", action="store_true", help="exit 1 when the README is out of date; write nothing"
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite regions that were edited by hand"
    )
    p.add_argument("--file", help="the README to update (default: README.md of this repo)")

    p = command(
        "migrate",
        cmd_migrate,
        "copy this lab into another, empty database (SQLite <-> PostgreSQL), verified by counts "
        "and checksums",
    )
    p.add_argument(
        "--to",
        required=True,
        metavar="URL_OR_PATH",
        help="the target: a postgresql:// URL or a SQLite file path; it must hold no lab yet",
    )
    p = command(
        "serve", cmd_serve, "the MCP server: stdio (default, one per agent) or --http (shared)"
    )
    p.add_argument(
        "--http", action="store_true", help="serve Streamable HTTP (bearer token) instead of stdio"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="bind address for --http (default: loopback only)"
    )
    p.add_argument("--port", type=int, default=8765, help="port for --http (default 8765)")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="a Host header clients use (repeatable); required when --host is not loopback",
    )

    finding = sub.add_parser("finding", help="record and list findings (claims with evidence)")
    finding_sub = finding.add_subparsers(dest="finding_command", required=True, parser_class=Parser)
    p = command(
        "add",
        cmd_finding_add,
        "record a finding: subject, predicate, scope, typed value, evidence",
        finding_sub,
    )
    p.add_argument("--subject")
    p.add_argument("--predicate", help="e.g. decode_tps_single_stream (see facts/predicates.toml)")
    p.add_argument("--value", help="a number, true/false, or text")
    p.add_argument("--unit")
    p.add_argument(
        "--scope",
        action="append",
        default=[],
        help="KEY=VALUE, e.g. gpu='RTX Pro 6000' (repeatable)",
    )
    p.add_argument(
        "--attr", action="append", default=[], help="context KEY=VALUE, not part of the key"
    )
    p.add_argument("--statement", help="one line for people")
    p.add_argument(
        "--evidence",
        action="append",
        default=[],
        help='JSON, e.g. {"kind": "run", "locator": "res-…", "metric": "single_tps"} (repeatable)',
    )
    p.add_argument("--file", help="findings as JSON (one object or a list), or - for stdin")
    p.add_argument("--agent", help="who (default: SWARM_AGENT)")
    p.add_argument("--task", help="the task this finding came from")
    p = command("ls", cmd_finding_ls, "list findings", finding_sub)
    p.add_argument("--subject")
    p.add_argument("--predicate")

    facts_cmd = sub.add_parser("facts", help="check citations, reconcile, write facts/")
    facts_sub = facts_cmd.add_subparsers(dest="facts_command", required=True, parser_class=Parser)
    command(
        "import-seed",
        cmd_facts_import_seed,
        "record the seed's claims and figures as findings",
        facts_sub,
    )
    p = command(
        "verify", cmd_facts_verify, "check every citation offline; show what is not ok", facts_sub
    )
    p.add_argument("--all", action="store_true", help="show every check, not only the problems")
    p = command(
        "reconcile",
        cmd_facts_reconcile,
        "derive facts; write facts/findings.jsonl and verified_facts.json",
        facts_sub,
    )
    p.add_argument(
        "--from-log", action="store_true", help="rebuild from facts/findings.jsonl alone (git only)"
    )
    command(
        "repair",
        cmd_facts_repair,
        "move a torn last line of facts/findings.jsonl aside (to findings.jsonl.torn)",
        facts_sub,
    )
    p.add_argument(
        "--check", action="store_true", help="exit 1 when facts/verified_facts.json is out of date"
    )
    p.add_argument(
        "--max-replications",
        type=int,
        default=3,
        metavar="N",
        help="re-measurements of stale facts queued per matching GPU per day (default 3)",
    )

    p = command(
        "triage", cmd_triage, "decide conflicts (interactive on a terminal; otherwise lists them)"
    )
    p.add_argument(
        "--interactive", action="store_true", help="prompt even when stdin is not a terminal"
    )
    p.add_argument("--by", help="who decides (default: git user.name <user.email>)")
    triage_sub = p.add_subparsers(dest="triage_command", parser_class=Parser)
    q = command("list", cmd_triage_list, "the open conflicts, side by side", triage_sub)
    q.add_argument("--all", action="store_true", help="decided ones too (deferred are listed)")
    q = command(
        "resolve", cmd_triage_resolve, "record a decision on a conflict (scripts, MCP)", triage_sub
    )
    q.add_argument("conflict")
    how = q.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--accept", action="append", metavar="FINDING", help="accept these findings' value"
    )
    how.add_argument("--reject", action="store_true", help="reject every side")
    how.add_argument(
        "--defer",
        action="store_true",
        help="leave it disputed, out of the triage queue (its replication task stays)",
    )
    how.add_argument(
        "--split-by", metavar="ATTRIBUTE", help="the sides differ in this hidden scope"
    )
    q.add_argument("--reason", required=True, help="why, for the people after you")
    q.add_argument("--by", help="who decides (default: git user.name <user.email>)")
    q = command(
        "undo", cmd_triage_undo, "reverse one recorded decision (by its finding id)", triage_sub
    )
    q.add_argument("decision", help="the decision's finding id (`swarm triage list --all`)")
    q.add_argument("--reason", required=True, help="why it is reversed")
    q.add_argument("--by", help="who reverses it (default: git user.name <user.email>)")
    q = command(
        "cancel",
        cmd_triage_cancel,
        "cancel a conflict's pending replication or research task (it is not queued again)",
        triage_sub,
    )
    q.add_argument("conflict")
    q.add_argument("--reason", required=True, help="why, kept on the task")
    q.add_argument("--by", help="who cancels it (default: git user.name <user.email>)")

    p = command(
        "search",
        cmd_search,
        "full-text search of findings, task titles and notes, results' notes and job logs",
    )
    p.add_argument("text", help="words to find (all of them, else any; stems match: overflows)")
    p.add_argument(
        "--kind",
        action="append",
        choices=("finding", "task", "result", "log"),
        help="only this kind of document (repeatable)",
    )
    p.add_argument("--limit", type=int, default=20, help="at most this many hits (1-100)")

    p = command(
        "export", cmd_export, "write a table of the lab as JSON, CSV or newline-delimited JSON"
    )
    p.add_argument("table", choices=("tasks", "results", "findings", "events"))
    p.add_argument("--format", choices=("json", "csv", "nljson"), default="json")
    p.add_argument("-o", "--output", help="file to write (atomically; default: stdout)")

    p = command(
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

    p = command(
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

    p = command(
        "bench",
        cmd_bench,
        "benchmark an OpenAI-compatible streaming server (vLLM-named metrics, sweep, knee)",
    )
    p.add_argument("--endpoint", required=True, help="http://host:port[/v1/chat/completions]")
    p.add_argument("--model", help="the served model name (default: the first in /v1/models)")
    p.add_argument(
        "--server-kind",
        default="auto",
        choices=["auto", "vllm", "sglang", "trt-llm", "transformers", "openai"],
        help="how output length is forced; auto asks /v1/models (default)",
    )
    p.add_argument("--concurrency", help="closed-loop levels, e.g. 1,2,4,8 (default 1)")
    p.add_argument(
        "--rate",
        type=float,
        help="open loop instead: requests/s (Poisson); a --concurrency list then caps requests "
        "in flight at its largest value",
    )
    p.add_argument(
        "--burstiness", type=float, default=1.0, help="gamma shape of arrivals (1 = Poisson)"
    )
    p.add_argument(
        "--input-len",
        type=int,
        default=128,
        help="prompt length: tokens with --tokenizer, else words (default 128)",
    )
    p.add_argument("--output-len", type=int, default=128, help="forced output tokens (default 128)")
    p.add_argument("--requests", type=int, help="per level (default max(8*P, 64))")
    p.add_argument("--duration", type=float, help="seconds per level instead of a request count")
    p.add_argument(
        "--warmup", type=int, help="warm-up requests per level (default min(P, 16), ≥ 2)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--timeout",
        type=float,
        help="per request, seconds (default 30 + 0.25 per output token); a timeout is a failure",
    )
    p.add_argument(
        "--max-error-rate",
        type=float,
        default=0.01,
        help="a level with more failed requests than this share is invalid: kept in the report, "
        "never a finding; no valid level exits 1 (default 0.01)",
    )
    p.add_argument("--slo-ttft-ms", type=float, help="goodput SLO")
    p.add_argument("--slo-tpot-ms", type=float, help="goodput SLO")
    p.add_argument("--slo-e2el-ms", type=float, help="goodput SLO")
    p.add_argument(
        "--ttft-stop-ms", type=float, help="stop the sweep once median TTFT exceeds this"
    )
    p.add_argument("--knee-gain", type=float, default=0.25, help="knee threshold (default 0.25)")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="measure the client's ceiling first and flag levels near it client_limited",
    )
    p.add_argument(
        "--lab",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="what is measured, kept in the report: model, params, type, quant, platform, gpu, "
        "arch, tp, vram_gb (repeatable)",
    )
    p.add_argument(
        "--tokenizer",
        help="a local tokenizer.json (or model directory) to count output tokens when the server "
        "sends no usage (default: the chunk count, a lower bound)",
    )
    p.add_argument(
        "--per-process",
        type=int,
        default=128,
        help="closed-loop workers per client process; a level above it is sharded (default 128)",
    )
    p.add_argument(
        "--per-request",
        action="store_true",
        help="keep each request's send time, TTFT, E2EL, tokens, count source and error",
    )
    p.add_argument("--out", help="write the full JSON report here")
    p.add_argument(
        "--save-result",
        metavar="DIR",
        help="also write each level as `vllm bench serve --save-result` does (its keys and file names)",
    )
    p.add_argument("--plot", help="write the sweep plot (PNG) here")

    kernel = sub.add_parser("kernel", help="build and check the CUDA kernels under kernels/")
    kernel_sub = kernel.add_subparsers(dest="kernel_command", required=True, parser_class=Parser)
    p = command(
        "build",
        cmd_kernel_build,
        "nvcc per target, ptxas resources, cached; --test checks on this GPU",
        kernel_sub,
    )
    p.add_argument("name", nargs="*", help="kernels from kernels/manifest.toml (default: all)")
    p.add_argument(
        "--arch",
        action="append",
        help="target such as sm_120a (repeatable; default: the manifest's)",
    )
    p.add_argument(
        "--test",
        action="store_true",
        help="check against the numpy reference on the GPU here, if its arch was built",
    )

    hooks = sub.add_parser("hooks", help="the attribution git hooks")
    hooks_sub = hooks.add_subparsers(dest="hooks_command", required=True, parser_class=Parser)
    command("install", cmd_hooks_install, "enable .githooks/ in this clone (idempotent)", hooks_sub)
    p = command(
        "check",
        cmd_hooks_check,
        "check every commit of a range (CI, pre-push); exit 1 on any problem",
        hooks_sub,
    )
    p.add_argument(
        "revs", nargs="+", metavar="REV_RANGE", help="e.g. origin/main..HEAD (git log syntax)"
    )
    return parser


def _fail(code: int, kind: str, message: str, as_json: bool) -> int:
    if as_json:
        print(
            json.dumps(
                {
                    "schema_version": 1,
                    "error": {"type": kind, "message": message, "exit_code": code},
                }
            )
        )
    else:
        print(f"swarm: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    # Text that came in as non-UTF-8 argv (surrogate escapes) must not crash the printing of a
    # message about it.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    from pydantic import ValidationError

    from swarm.core.errors import SwarmError
    from swarm.core.limits import check_numbers, check_text, describe

    try:
        for i, arg in enumerate(argv, 1):  # non-UTF-8 bytes arrive as surrogates: refuse them here
            check_text(arg, f"argument {i}")
        args = build_parser().parse_args(argv)
        check_numbers(vars(args))
        ctx = Context(args)
        args.fn(ctx)
    except UsageError as exc:
        return _fail(2, "UsageError", str(exc), as_json)
    except SwarmError as exc:
        return _fail(exc.exit_code, type(exc).__name__, str(exc), as_json)
    except ValidationError as exc:  # a model built from a flag: the same wording as MCP's
        return _fail(7, "InvalidInput", describe(exc), as_json)
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into an unwind (tools/deploy.py)
        return _fail(
            130, "Interrupted", "stopped by a signal; what it started was removed", as_json
        )
    except Exception as exc:  # a bug: still one line (and JSON with --json), never a traceback
        if os.environ.get("SWARM_DEBUG"):
            raise
        message = f"internal error (a bug; SWARM_DEBUG=1 shows where): {type(exc).__name__}: {exc}"
        return _fail(1, "InternalError", message, as_json)
    return ctx.exit_code


if __name__ == "__main__":
    sys.exit(main())
