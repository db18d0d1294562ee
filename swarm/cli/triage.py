"""`swarm triage [list|resolve|undo|cancel]`: a person decides conflicts; interactive on a
terminal.
"""

from __future__ import annotations

import sys
from typing import Any

from swarm.cli import base
from swarm.cli.base import Commands, Context


def _triage_conflicts(ctx: Context) -> Any:
    from swarm.lab import triage

    return triage.conflicts(ctx.store, base.repo(), base.facts_cache(ctx))


def add_triage(cli: Commands) -> None:
    p = cli.add(
        "triage", cmd_triage, "decide conflicts (interactive on a terminal; otherwise lists them)"
    )
    p.add_argument(
        "--interactive", action="store_true", help="prompt even when stdin is not a terminal"
    )
    decide = cli.nested(p, "triage_command", required=False)
    for add in (add_triage_list, add_triage_resolve, add_triage_undo, add_triage_cancel):
        add(decide)


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
            base.repo(),
            conflict.id,
            action,
            reason,
            base.person(),
            base.now(),
            accept=accept,
            split_by=split_by,
            cache=base.facts_cache(ctx),
        )
        print(f"recorded {finding.id}\n")


def add_triage_list(cli: Commands) -> None:
    q = cli.add("list", cmd_triage_list, "the open conflicts, side by side")
    q.add_argument("--all", action="store_true", help="decided ones too (deferred are listed)")


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


def add_triage_resolve(cli: Commands) -> None:
    q = cli.add("resolve", cmd_triage_resolve, "record a decision on a conflict (scripts, MCP)")
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


def cmd_triage_resolve(ctx: Context) -> None:
    from swarm.lab import triage

    a = ctx.args
    action: triage.Action = (
        "accept" if a.accept else "reject" if a.reject else "defer" if a.defer else "split"
    )
    finding = triage.decide(
        ctx.store,
        base.repo(),
        a.conflict,
        action,
        a.reason,
        base.person(),
        base.now(),
        accept=tuple(a.accept or ()),
        split_by=a.split_by,
        cache=base.facts_cache(ctx),
    )
    ctx.emit(
        finding,
        lambda: (
            f"recorded {finding.id}: {action} {a.conflict} ({a.reason}); "
            "run `swarm facts reconcile` to apply it to facts/"
        ),
    )


def add_triage_undo(cli: Commands) -> None:
    q = cli.add("undo", cmd_triage_undo, "reverse one recorded decision (by its finding id)")
    q.add_argument("decision", help="the decision's finding id (`swarm triage list --all`)")
    q.add_argument("--reason", required=True, help="why it is reversed")


def cmd_triage_undo(ctx: Context) -> None:
    from swarm.lab import triage

    a = ctx.args
    finding = triage.undo(ctx.store, a.decision, a.reason, base.person(), base.now())
    ctx.emit(
        finding,
        lambda: (
            f"recorded {finding.id}: undo {a.decision} ({a.reason}); "
            "run `swarm facts reconcile` to apply it to facts/"
        ),
    )


def add_triage_cancel(cli: Commands) -> None:
    q = cli.add(
        "cancel",
        cmd_triage_cancel,
        "cancel a conflict's pending replication or research task (it is not queued again)",
    )
    q.add_argument("conflict")
    q.add_argument("--reason", required=True, help="why, kept on the task")


def cmd_triage_cancel(ctx: Context) -> None:
    from swarm.lab import replication

    a = ctx.args
    conflicts = tuple(_triage_conflicts(ctx))
    row = replication.cancel(ctx.store, conflicts, a.conflict, a.reason, base.person(), base.now())
    ctx.emit(row, lambda: f"{a.conflict}: {replication.describe(row)}")


def register(cli: Commands) -> None:
    add_triage(cli)
