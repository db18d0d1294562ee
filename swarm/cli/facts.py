"""`swarm finding add|ls` and `swarm facts import-seed|verify|reconcile|repair`: claims with
evidence, and the pipeline that checks, reconciles and writes facts/.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from swarm.cli import base
from swarm.cli.base import Commands, Context, UsageError


def _finding_items(a: argparse.Namespace) -> list[Any]:
    from swarm.facts.findings import parse_findings

    if a.file:
        return parse_findings(base.read_json_list(a.file if a.file == "-" else "@" + a.file))
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
    evidence = [base.read_json(e, "evidence") for e in a.evidence]
    return parse_findings(
        [
            {
                "subject": a.subject,
                "predicate": a.predicate,
                "value": base.scalar(a.value),
                "unit": a.unit,
                "scope": base.pairs(a.scope, "--scope", typed=False),
                "statement": a.statement or f"{a.subject} {a.predicate} = {a.value}",
                "evidence": evidence,
                "attributes": base.pairs(a.attr, "--attr"),
            }
        ]
    )


def add_finding_add(cli: Commands) -> None:
    p = cli.add(
        "add", cmd_finding_add, "record a finding: subject, predicate, scope, typed value, evidence"
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


def cmd_finding_add(ctx: Context) -> None:
    from swarm.facts.findings import add_findings, refuse_decisions

    agent = getattr(ctx.args, "agent", None) or os.environ.get("SWARM_AGENT")
    items = _finding_items(ctx.args)
    if agent:  # an agent's findings are claims; decisions are people's (swarm triage)
        refuse_decisions(items, agent)
    elif any(f.decision is not None for f in items):  # a person here: the decider is derived
        by = base.person()
        items = [
            f.model_copy(update={"decision": f.decision.model_copy(update={"by": by})})
            if f.decision is not None
            else f
            for f in items
        ]
    added = add_findings(ctx.store, items, agent or base.person(), base.now(), ctx.args.task)
    ctx.emit(
        {"findings": [f.model_dump(mode="json") for f in added]},
        lambda: "\n".join(f"recorded {f.id}: {f.statement}" for f in added),
    )


def add_finding_ls(cli: Commands) -> None:
    p = cli.add("ls", cmd_finding_ls, "list findings")
    p.add_argument("--subject")
    p.add_argument("--predicate")


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


def add_facts_import_seed(cli: Commands) -> None:
    cli.add(
        "import-seed", cmd_facts_import_seed, "record the seed's claims and figures as findings"
    )


def cmd_facts_import_seed(ctx: Context) -> None:
    from swarm.facts.findings import add_findings
    from swarm.lab.seed import SEED_AGENT, seed_findings

    before = len(ctx.store.read(lambda c: c.execute("SELECT id FROM findings").fetchall()))
    items = add_findings(ctx.store, seed_findings(base.repo()), SEED_AGENT, base.now())
    added = len(ctx.store.read(lambda c: c.execute("SELECT id FROM findings").fetchall())) - before
    ctx.emit(
        {"findings": len(items), "added": added},
        lambda: f"seed: {len(items)} findings ({added} new) from the seed document and catalog",
    )


def add_facts_verify(cli: Commands) -> None:
    p = cli.add("verify", cmd_facts_verify, "check every citation offline; show what is not ok")
    p.add_argument("--all", action="store_true", help="show every check, not only the problems")


def cmd_facts_verify(ctx: Context) -> None:
    from swarm.lab import pipeline as facts

    checks, bad = facts.verify(ctx.store, base.repo())
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


def add_facts_reconcile(cli: Commands) -> None:
    p = cli.add(
        "reconcile",
        cmd_facts_reconcile,
        "derive facts; write facts/findings.jsonl and verified_facts.json",
    )
    p.add_argument(
        "--from-log", action="store_true", help="rebuild from facts/findings.jsonl alone (git only)"
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


def cmd_facts_reconcile(ctx: Context) -> None:
    from swarm.lab import pipeline as facts
    from swarm.present import render

    a = ctx.args
    outcome = facts.run(
        None if a.from_log else ctx.store,
        base.repo(),
        write=not a.check,
        cache=base.facts_cache(ctx),
    )
    if a.check:
        current = base.repo() / "facts" / facts.FACTS
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
            ctx.store, outcome.facts, outcome.checks, base.now(), a.max_replications
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


def add_facts_repair(cli: Commands) -> None:
    cli.add(
        "repair",
        cmd_facts_repair,
        "move a torn last line of facts/findings.jsonl aside (to findings.jsonl.torn)",
    )


def cmd_facts_repair(ctx: Context) -> None:
    from swarm.facts.findings import repair_log
    from swarm.lab import pipeline as facts

    path = base.repo() / "facts" / facts.LOG
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


def register(cli: Commands) -> None:
    finding = cli.group("finding", "record and list findings (claims with evidence)")
    add_finding_add(finding)
    add_finding_ls(finding)
    facts = cli.group("facts", "check citations, reconcile, write facts/")
    for add in (add_facts_import_seed, add_facts_verify, add_facts_reconcile, add_facts_repair):
        add(facts)
