"""Human triage of conflicts: a decision is recorded as a finding (kind 'decision') with who and
why, and the reconciler applies it on every later pass until newer local evidence contradicts it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from swarm import facts
from swarm.errors import InvalidInput, NotFound
from swarm.findings import Decision, Finding, NewFinding, add_findings, all_findings
from swarm.models import iso
from swarm.reconcile import Conflict
from swarm.store import Store

Action = Literal["accept", "reject", "split", "defer"]


def find_conflict(store: Store, repo: Path, conflict_id: str) -> Conflict:
    for conflict in facts.run(store, repo, write=False).facts.conflicts:
        if conflict.id == conflict_id:
            return conflict
    raise NotFound(f"no conflict {conflict_id!r}; `swarm triage list` shows them")


def _check_split(conflict: Conflict, attr: str | None, by_id: dict[str, Finding]) -> str:
    """A split needs an attribute every finding of every side records, or it splits nothing."""
    if not attr:
        raise InvalidInput("a split needs --split-by ATTRIBUTE (one the sides differ in)")
    lacking = sorted(
        fid
        for side in conflict.sides
        for fid in side.findings
        if fid in by_id and by_id[fid].attributes.get(attr) is None
    )
    if lacking:
        known = sorted(
            {k for side in conflict.sides for fid in side.findings if fid in by_id
             for k, v in by_id[fid].attributes.items() if v is not None}
        )  # fmt: skip
        raise InvalidInput(
            f"cannot split {conflict.id} by {attr!r}: {', '.join(lacking)} do not record it; "
            f"attributes recorded on its sides: {', '.join(known) or 'none'}"
        )
    return attr


def decide(
    store: Store,
    repo: Path,
    conflict_id: str,
    action: Action,
    reason: str,
    by: str,
    now: datetime,
    accept: tuple[str, ...] = (),
    split_by: str | None = None,
) -> Finding:
    """Record a person's decision on a conflict, attached to the findings on its sides.

    Raises NotFound (no such conflict) or InvalidInput (accept outside the conflict, a split by
    an attribute a side lacks, no reason).
    """
    if len(reason.strip()) < 3:
        raise InvalidInput(
            "say why (--reason): the decision is kept as evidence for people after you"
        )
    conflict = find_conflict(store, repo, conflict_id)
    on_sides = tuple(sorted({fid for side in conflict.sides for fid in side.findings}))
    if action == "accept" and (not accept or not set(accept) <= set(on_sides)):
        raise InvalidInput(f"--accept must name findings of {conflict_id}: {', '.join(on_sides)}")
    if action == "split":
        split_by = _check_split(conflict, split_by, findings_by_id(store))
    decision = Decision(
        conflict=conflict_id,
        action=action,
        findings=on_sides,
        accept=tuple(sorted(accept)) if action == "accept" else (),
        split_by=split_by if action == "split" else None,
        reason=reason,
        by=by,
    )
    return _record(store, decision, now)


def undo(store: Store, decision_id: str, reason: str, by: str, now: datetime) -> Finding:
    """Reverse one decision: the reconciler treats the conflict as if it had never been decided.

    Raises NotFound (no such decision) or InvalidInput (an undo itself, already undone, no reason).
    """
    if len(reason.strip()) < 3:
        raise InvalidInput("say why (--reason): an undo is kept as evidence too")
    made = {f.id: f for f in all_findings(store) if f.kind == "decision" and f.decision}
    target = made.get(decision_id)
    if target is None or target.decision is None:
        raise NotFound(
            f"no decision {decision_id!r}; `swarm triage list --all` shows the decided conflicts"
        )
    if target.decision.action == "undo":
        raise InvalidInput(f"{decision_id} is an undo; record the decision again instead")
    if any(f.decision and f.decision.undoes == decision_id for f in made.values()):
        raise InvalidInput(f"{decision_id} is already undone")
    decision = Decision(
        conflict=target.decision.conflict,
        action="undo",
        findings=target.decision.findings,
        undoes=decision_id,
        reason=reason,
        by=by,
    )
    return _record(store, decision, now)


def _record(store: Store, decision: Decision, now: datetime) -> Finding:
    decision = decision.model_copy(update={"made_at": iso(now)})
    finding = NewFinding(
        subject=decision.conflict,
        predicate="decision",
        value=decision.action,
        statement=decision.reason,
        kind="decision",
        decision=decision,
    )
    return add_findings(store, [finding], decision.by, now)[0]


def findings_by_id(store: Store) -> dict[str, Finding]:
    return {f.id: f for f in all_findings(store)}
