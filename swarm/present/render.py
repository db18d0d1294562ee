"""Human-readable output for the CLI (the --json form is the models' own dump)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swarm.core.models import Agent, Claim, Event, Result, Task, TaskSummary
    from swarm.db.search import SearchResults
    from swarm.facts.findings import Finding
    from swarm.facts.reconcile import Conflict, FactsFile
    from swarm.lab.replication import SyncReport
    from swarm.present.board import Board
    from tools.kernel_build import KernelReport


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned table: deterministic, greppable, no colour codes."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def tasks(items: Sequence[Task | TaskSummary]) -> str:
    from swarm.core.models import TaskSummary

    if not items:
        return "no tasks"
    summaries = [t if isinstance(t, TaskSummary) else TaskSummary.of(t) for t in items]
    rows = [
        (
            t.id,
            t.kind,
            t.state + (" (blocked)" if t.blocked else ""),
            t.priority,
            t.holder or "",
            t.title,
        )
        for t in summaries
    ]
    return table(("ID", "KIND", "STATE", "PRI", "HOLDER", "TITLE"), rows)


def task(t: Task, results: Sequence[Result] = ()) -> str:
    lines = [
        f"{t.id}  {t.kind}  {t.state}",
        f"title:      {t.title}",
        f"priority:   {t.priority}   attempts: {t.attempts}/{t.max_attempts}   epoch: {t.epoch}",
    ]
    requires = t.requires.model_dump(exclude_defaults=True)
    if requires:
        lines.append("requires:   " + ", ".join(f"{k}={v}" for k, v in requires.items()))
    if t.depends_on:
        lines.append("depends_on: " + ", ".join(t.depends_on))
    if t.blocked_by:
        lines.append("blocked by: " + ", ".join(t.blocked_by))
    if t.lease:
        gpu = f"  gpu: {t.lease.gpu.gpu_name} {t.lease.gpu.gb:g} GB" if t.lease.gpu else ""
        lines.append(
            f"lease:      {t.lease.holder} epoch {t.lease.epoch} until {t.lease.expires_at}{gpu}"
        )
    if t.dedupe_key:
        lines.append(f"dedupe_key: {t.dedupe_key}")
    if t.note:
        lines.append(f"note:       {t.note}")
    lines.append("spec:       " + ", ".join(f"{k}={v}" for k, v in t.spec.items()))
    for r in results:
        lines.append(f"result:     {r.id} {r.status} by {r.agent} (epoch {r.epoch}) {r.payload}")
    return "\n".join(lines)


def claim(c: Claim) -> str:
    gpu = f", GPU {c.lease.gpu.gpu_name} ({c.lease.gpu.gb:g} GB)" if c.lease.gpu else ""
    return (
        f"claimed {c.task.id} (epoch {c.lease.epoch}, lease until {c.lease.expires_at}{gpu})\n"
        f"{c.task.title}\n"
        f"next (as {c.lease.holder}: SWARM_AGENT or --agent): "
        f"swarm heartbeat {c.task.id} --epoch {c.lease.epoch}; "
        f"swarm report {c.task.id} --epoch {c.lease.epoch} --status done|failed"
    )


def events(items: Sequence[Event]) -> str:
    rows = [(e.seq, e.at, e.actor, e.action, e.epoch, e.detail) for e in items]
    return table(("SEQ", "AT", "ACTOR", "ACTION", "EPOCH", "DETAIL"), rows)


def agent(a: Agent) -> str:
    caps = a.capabilities
    gpus = ", ".join(f"{g.name} ({g.arch}, {g.memory_total_gb:g} GB)" for g in caps.gpus)
    return (
        f"{a.id} on {caps.host}\n"
        f"gpus:  {gpus or 'none' + (f' ({caps.gpu_note})' if caps.gpu_note else '')}\n"
        f"tools: {', '.join(caps.tools) or 'none'}"
    )


def board(b: Board) -> str:
    parts = [f"warning: {w}" for w in b.warnings] + [b.headline, ""]
    parts.append(
        table(("GPU", "ARCH", "DEPLOYMENTS"), [(g.gpu, g.arch, g.deployments) for g in b.gpus])
    )
    states = ("pending", "claimed", "done", "failed", "cancelled")
    kind_rows = [(k, *(c.get(s, 0) for s in states)) for k, c in sorted(b.by_kind.items())]
    parts += ["", table(("KIND", *(s.upper() for s in states)), kind_rows)]
    parts.append(f"\n{b.blocked} pending tasks are blocked by unfinished dependencies")
    if b.claimed:
        rows = [
            (c.id, c.holder, c.epoch, f"{c.lease_age_s:.0f}s", f"{c.expires_in_s:.0f}s", c.title)
            for c in b.claimed
        ]
        parts += ["", table(("CLAIMED", "HOLDER", "EPOCH", "AGE", "EXPIRES IN", "TITLE"), rows)]
    if b.gpu_holds:  # servers left running: deployments on their GPUs wait
        holds = [(h.gpu, h.host, h.task_id, h.until) for h in b.gpu_holds]
        parts += ["", table(("GPU HELD", "HOST", "BY THE SERVER OF", "UNTIL"), holds)]
    if b.resolution:
        settling = [(r.conflict or "(stale)", r.purpose, r.task_id, r.state, r.holder or "")
                    for r in b.resolution]  # fmt: skip
        parts += ["", table(("SETTLING", "WORK", "TASK", "STATE", "HOLDER"), settling)]
    return "\n".join(parts)


def conflict(c: Conflict, findings: dict[str, Finding]) -> str:
    """One conflict, its sides next to each other, for a person deciding it."""
    lines = [f"{c.id}  {c.reason}  [{c.state}]", f"  {c.explanation}"]
    if c.decision:
        lines.append(f"  decision: {c.decision}  (undo: swarm triage undo {c.decision_id})")
    lines += [f"  lapsed: {why}" for why in c.lapsed]
    for n, side in enumerate(c.sides, 1):
        lines.append(
            f"  side {n}: {side.value}  tier={side.best_tier or 'none'}  origins={side.origins}"
            f" (local {side.local_origins})" + (f"  ({side.note})" if side.note else "")
        )
        for fid in side.findings:
            f = findings.get(fid)
            if f is None:
                continue
            scope = ", ".join(f"{k}={v}" for k, v in f.scope.items())
            attrs = ", ".join(f"{k}={v}" for k, v in f.attributes.items() if v is not None)
            lines.append(f"    {fid}  by {f.agent} at {f.observed_at[:10]}: {f.statement}")
            lines.append(f"      scope: {scope or '-'}" + (f"   context: {attrs}" if attrs else ""))
            for ev in f.evidence:
                lines.append(f"      evidence: {ev.kind} {ev.snapshot or ev.locator}")
    return "\n".join(lines)


def facts_summary(facts: FactsFile, changed: tuple[str, ...]) -> str:
    counts: dict[str, int] = {}
    for f in facts.facts:
        counts[f.status] = counts.get(f.status, 0) + 1
    open_ = [c for c in facts.conflicts if c.state == "open"]
    parts = [", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no facts"]
    parts.append(f"{len(open_)} open conflicts (swarm triage list)")
    parts.append("wrote " + ", ".join(changed) if changed else "facts/ unchanged")
    return "\n".join(parts)


def kernel_report(r: KernelReport) -> str:
    rows: list[tuple[object, ...]] = []
    for build in r.builds:
        for t in build.targets:
            if not t.ok:
                rows.append((build.kernel, t.target, "FAILED", "", "", "", "; ".join(t.errors[:2])))
            for f in t.functions:
                rows.append(
                    (
                        build.kernel,
                        t.target,
                        "cached" if t.cached else f"{t.seconds:.1f}s",
                        f.registers,
                        f"{f.spill_stores}/{f.spill_loads}",
                        f.smem_bytes,
                        f.function[:60],
                    )
                )
    out = [table(("KERNEL", "TARGET", "BUILD", "REGS", "SPILL ST/LD", "SMEM", "FUNCTION"), rows)]
    if r.tests:
        out.append("")
        out += [f"test {name}: {t.status} - {t.reason}" for name, t in r.tests.items()]
    return "\n".join(out)


def search_results(found: SearchResults) -> str:
    if not found.hits:
        return f"nothing found for {found.query!r}"
    lines = (
        [] if found.match == "all" else [f"no document has every word; some of {found.query!r}:"]
    )
    for hit in found.hits:
        task = f" (task {hit.task_id})" if hit.task_id and hit.task_id != hit.id else ""
        lines.append(f"{hit.kind:<8} {hit.id}{task}  {hit.title}")
        lines.append(f"         {hit.snippet}")
        if hit.related:
            lines.append(f"         failed deployments it names: {', '.join(hit.related)}")
    return "\n".join(lines)


def sync_summary(report: SyncReport) -> str:
    """What `swarm facts reconcile` queued or cancelled for the conflicts (swarm/lab/replication.py)."""
    lines = [f"queued {key}" for key in report.queued]
    lines += [f"cancelled {task}" for task in report.cancelled]
    if report.stale:
        lines.append(
            f"{len(report.stale)} stale fact(s) wait for re-measurement (--max-replications)"
        )
    return "".join(f"\n{line}" for line in lines)
