"""Human triage of conflicts: a decision is recorded as a finding (kind 'decision') with who and
why, and the reconciler applies it on every later pass until newer local evidence contradicts it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from swarm import facts
from swarm.errors import InvalidInput, NotFound
from swarm.findings import Decision, Finding, NewFinding, add_findings, all_findings
from swarm.reconcile import Conflict
from swarm.store import Store

Action = Literal["accept", "reject", "split", "defer"]


def find_conflict(store: Store, repo: Path, conflict_id: str) -> Conflict:
    for conflict in facts.run(store, repo, write=False).facts.conflicts:
        if conflict.id == conflict_id:
            return conflict
    raise NotFound(f"no conflict {conflict_id!r}; `swarm triage list` shows them")


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
    """Record a person's decision on a conflict; raises NotFound or InvalidInput."""
    conflict = find_conflict(store, repo, conflict_id)
    on_sides = {fid for side in conflict.sides for fid in side.findings}
    if action == "accept" and (not accept or not set(accept) <= on_sides):
        raise InvalidInput(
            f"--accept must name findings of {conflict_id}: {', '.join(sorted(on_sides))}"
        )
    if action == "split":
        if not split_by:
            raise InvalidInput("a split needs --split-by ATTRIBUTE (one the sides differ in)")
        accept = (split_by,)
    if len(reason.strip()) < 3:
        raise InvalidInput(
            "say why (--reason): the decision is kept as evidence for people after you"
        )
    decision = Decision(conflict=conflict_id, action=action, accept=accept, reason=reason, by=by)
    finding = NewFinding(
        subject=conflict_id,
        predicate="decision",
        value=action,
        statement=reason,
        kind="decision",
        decision=decision,
    )
    return add_findings(store, [finding], by, now)[0]


def findings_by_id(store: Store) -> dict[str, Finding]:
    return {f.id: f for f in all_findings(store)}
