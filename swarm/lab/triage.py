"""Human triage of conflicts: a decision is recorded as a finding (kind 'decision') with who and
why, and the reconciler applies it on every later pass until newer local evidence contradicts it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from swarm.core.errors import InvalidInput, NotFound
from swarm.core.limits import STORED
from swarm.core.models import iso
from swarm.db.store import Conn, Store
from swarm.facts.findings import Decision, Finding, NewFinding, add_findings, all_findings
from swarm.facts.reconcile import Conflict
from swarm.facts.registry import add_aliases
from swarm.lab import pipeline as facts

Action = Literal["accept", "reject", "split", "defer"]


def conflicts(store: Store, repo: Path, cache: Path | None = None) -> tuple[Conflict, ...]:
    """Every conflict with its current decision (from the triage cache while it holds)."""
    return facts.conflicts_now(store, repo, cache)


def find_conflict(
    store: Store, repo: Path, conflict_id: str, cache: Path | None = None
) -> Conflict:
    for conflict in conflicts(store, repo, cache):
        if conflict.id == conflict_id:
            return conflict
    raise NotFound(f"no conflict {conflict_id!r}; `swarm triage list` shows them")


def split_attributes(sides: Sequence[Sequence[Finding]]) -> tuple[str, ...]:
    """The attributes a conflict with these sides can be split by: those every finding of every
    side records (a finding without one would land on an 'unknown' key, splitting nothing);
    the ones whose values differ between the sides first, as the likely hidden scope."""
    found = [f for side in sides for f in side]
    if not found:
        return ()
    recorded = [{k for k, v in f.attributes.items() if v is not None} for f in found]
    common = set.intersection(*recorded)

    def values(side: Sequence[Finding], key: str) -> frozenset[str]:
        return frozenset(json.dumps(f.attributes[key], sort_keys=True) for f in side)

    differing = sorted(k for k in common if len({values(side, k) for side in sides}) > 1)
    return (*differing, *sorted(common - set(differing)))


def conflict_sides(conflict: Conflict, by_id: Mapping[str, Finding]) -> list[list[Finding]]:
    """Each side's findings, as the store holds them."""
    return [[by_id[fid] for fid in side.findings if fid in by_id] for side in conflict.sides]


def _check_split(conflict: Conflict, attr: str | None, by_id: Mapping[str, Finding]) -> str:
    """A split needs an attribute every finding of every side records, or it splits nothing."""
    sides = conflict_sides(conflict, by_id)
    options = ", ".join(split_attributes(sides)) or "none (no attribute is on every finding)"
    if not attr:
        raise InvalidInput(
            f"a split needs --split-by ATTRIBUTE; {conflict.id} can be split by: {options}"
        )
    lacking = sorted(f.id for side in sides for f in side if f.attributes.get(attr) is None)
    if lacking:
        raise InvalidInput(
            f"cannot split {conflict.id} by {attr!r}: {', '.join(lacking)} do not record it; "
            f"attributes recorded on every finding of its sides: {options}"
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
    cache: Path | None = None,
) -> Finding:
    """Record a person's decision on a conflict, attached to the findings on its sides.

    Raises NotFound (no such conflict) or InvalidInput (accept outside the conflict, a split by
    an attribute a side lacks, no reason).
    """
    if len(reason.strip()) < 3:
        raise InvalidInput(
            "say why (--reason): the decision is kept as evidence for people after you"
        )
    conflict = find_conflict(store, repo, conflict_id, cache)
    on_sides = tuple(sorted({fid for side in conflict.sides for fid in side.findings}))
    if action == "accept" and (not accept or not set(accept) <= set(on_sides)):
        raise InvalidInput(f"--accept must name findings of {conflict_id}: {', '.join(on_sides)}")
    if action == "split":
        judged = [fid for side in conflict.sides for fid in side.findings]
        split_by = _check_split(conflict, split_by, findings_by_id(store, judged))
    if action == "accept" and conflict.reason == "possible alias":
        _record_alias(repo, conflict, set(accept))
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


def _record_alias(repo: Path, conflict: Conflict, accept: set[str]) -> None:
    """Accepting a side of a possible alias: the other sides' names become its aliases."""
    chosen = [side for side in conflict.sides if accept & set(side.findings)]
    if len(chosen) != 1 or chosen[0].note is None:
        raise InvalidInput("accept findings of exactly one side: its name is the one kept")
    keep = chosen[0].note
    others = {side.note: keep for side in conflict.sides if side.note and side.note != keep}
    add_aliases(repo / "facts", "model", others)


def undo(store: Store, decision_id: str, reason: str, by: str, now: datetime) -> Finding:
    """Reverse one decision: the reconciler treats the conflict as if it had never been decided.

    Raises NotFound (no such decision) or InvalidInput (an undo itself, already undone, no reason).
    """
    if len(reason.strip()) < 3:
        raise InvalidInput("say why (--reason): an undo is kept as evidence too")
    made = {f.id: f for f in facts.decisions(store) if f.decision}
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


def findings_by_id(store: Store, ids: Sequence[str] | None = None) -> dict[str, Finding]:
    """Findings by id: these ids only (read by primary key), or every finding."""
    if ids is None:
        return {f.id: f for f in all_findings(store)}
    wanted = sorted(set(ids))

    def read(conn: Conn) -> list[Any]:
        rows: list[Any] = []
        for i in range(0, len(wanted), 500):  # bounded IN lists on either backend
            part = wanted[i : i + 500]
            marks = ", ".join("?" for _ in part)
            rows += conn.execute(
                f"SELECT body FROM findings WHERE id IN ({marks})", part
            ).fetchall()
        return rows

    out: dict[str, Finding] = {}
    for (body,) in store.read(read):
        f = Finding.model_validate_json(body, context=STORED)
        out[f.id] = f
    return out
