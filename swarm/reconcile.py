"""The reconciler: a pure, deterministic function of findings, their checks, the registries and the
human decisions -> facts and conflicts.

Order (DESIGN.md): evidence checked mechanically (the caller passes the checks) -> entities
normalised through the alias registry -> findings without admissible evidence set aside ->
plausibility rules -> values clustered per key within the predicate's tolerance -> one cluster:
verified; several: the better evidence tier wins, then a newer local re-run on the same scope;
still tied -> a conflict for human triage. Cross-key rules (claim vs measurement) add conflicts
that no single key shows. Decisions hold until newer local evidence contradicts them.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Literal

from pydantic import Field

from swarm import SCHEMA_VERSION
from swarm.citations import Check
from swarm.findings import TIER_RANK, Decision, Finding, Scalar, Tier
from swarm.models import Model
from swarm.registry import Predicate, Registries

Checks = Mapping[tuple[str, int], Check]  # (finding id, evidence index) -> outcome


class FactStatus(StrEnum):
    verified = "verified"
    disputed = "disputed"
    stale = "stale"  # its evidence was good once, and has since drifted
    superseded = "superseded"
    deprecated = "deprecated"  # rejected by a person
    unverifiable = "unverifiable"  # no admissible evidence


ConflictReason = Literal[
    "numeric disagreement", "value disagreement", "physically implausible", "claim vs measurement"
]


class EvidenceOutcome(Model):
    """One cited source of a fact and how its check came out; `findings` counts who cited it."""

    kind: str
    locator: str
    tier: Tier
    status: str
    message: str
    findings: int


class Fact(Model):
    id: str
    key: str
    subject: str
    predicate: str
    scope: dict[str, Scalar]
    value: Scalar
    unit: str | None = None
    status: FactStatus
    statement: str
    findings: tuple[str, ...] = Field(description="findings that support this value")
    evidence: tuple[EvidenceOutcome, ...]
    independent_origins: int
    decided_by: str
    conflict: str | None = None
    supersedes: tuple[str, ...] = Field((), description="findings this value replaced")


class ConflictSide(Model):
    value: Scalar
    findings: tuple[str, ...]
    best_tier: Tier | None
    origins: int
    newest: str
    note: str | None = None


class Conflict(Model):
    id: str
    keys: tuple[str, ...]
    reason: ConflictReason
    explanation: str
    sides: tuple[ConflictSide, ...]
    state: Literal["open", "decided", "deferred"] = "open"
    decision: str | None = None


class FactsFile(Model):
    """facts/verified_facts.json: sorted, content-derived ids, nothing volatile."""

    schema_version: int = SCHEMA_VERSION
    facts: tuple[Fact, ...]
    conflicts: tuple[Conflict, ...]


# ---------------------------------------------------------------- small helpers


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def conflict_id(keys: Iterable[str], reason: str) -> str:
    return "c_" + _hash(sorted(keys), reason)[:10]


def _fmt(value: Scalar, unit: str | None = None) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}" if unit else text


def _scope_words(scope: Mapping[str, Scalar]) -> str:
    return ", ".join(f"{k}={v}" for k, v in scope.items()) or "any scope"


Outcome = tuple[str, str, Tier, str, str]  # kind, locator, tier, check status, check message


class Canon:
    """The registries with memoised canonical names: they run for every value of every finding."""

    def __init__(self, reg: Registries) -> None:
        self.reg = reg
        self._names: dict[tuple[str, Scalar], Scalar] = {}
        self._keys: dict[tuple[object, ...], str] = {}
        self._scopes: dict[tuple[tuple[str, Scalar], ...], dict[str, Scalar]] = {}
        self.bounds: dict[tuple[Scalar | None, ...], float | None] = {}

    def name(self, field: str, value: Scalar) -> Scalar:
        found = self._names.get((field, value))
        if found is None:
            found = self._names[(field, value)] = self.reg.canonical(field, value)
        return found

    def scope(self, scope: Mapping[str, Scalar]) -> dict[str, Scalar]:
        """The canonical scope, shared (read-only) by every finding written with the same one."""
        memo = tuple(scope.items())
        found = self._scopes.get(memo)
        if found is None:
            found = self._scopes[memo] = {k: self.name(k, scope[k]) for k in sorted(scope)}
        return found

    def key(self, subject: str, predicate: str, scope: Mapping[str, Scalar]) -> str:
        """'subject|predicate|{scope json}', memoised: most findings share their key with others."""
        memo = (subject, predicate, *scope.items())
        found = self._keys.get(memo)
        if found is None:
            found = self._keys[memo] = f"{subject}|{predicate}|{json.dumps(scope, sort_keys=True)}"
        return found


class Claim:
    """A finding as the reconciler sees it: canonical key, admissible tier, rule violations."""

    def __init__(
        self, finding: Finding, canon: Canon, checks: Checks, split: Mapping[str, str]
    ) -> None:
        self.finding = finding
        self.predicate: Predicate = canon.reg.predicate(finding.predicate)
        kind = self.predicate.subject
        self.subject = finding.subject if kind == "text" else str(canon.name(kind, finding.subject))
        self.value = finding.value
        self.newest = finding.observed_at
        self.scope = canon.scope(finding.scope)
        self.key = canon.key(self.subject, finding.predicate, self.scope)
        if split and self.key in split:  # a person split this key by a hidden attribute
            attr = split[self.key]
            self.scope = {**self.scope, attr: finding.attributes.get(attr) or "unknown"}
            self.key = canon.key(self.subject, finding.predicate, self.scope)
        outcomes = []
        for i, ev in enumerate(finding.evidence):
            check = checks[(finding.id, i)]
            outcomes.append(
                (
                    str(ev.kind),
                    ev.snapshot or ev.locator,
                    ev.effective_tier,
                    check.status,
                    check.message,
                )
            )
        self.outcomes: tuple[Outcome, ...] = tuple(outcomes)
        tiers = [
            o[2] for o in self.outcomes if o[3] == "ok" and o[2] in self.predicate.verify_tiers
        ]
        self.tier: Tier | None = max(tiers, key=TIER_RANK.__getitem__, default=None)
        # independent origins: twenty agents citing one page are one origin
        self.origins = {(o[0], o[1].lower()) for o in self.outcomes if o[3] == "ok"}
        self.drifted = any(o[3] == "drifted" for o in self.outcomes)
        self.implausible: list[str] = []


# ---------------------------------------------------------------- plausibility rules


@functools.lru_cache(maxsize=4096)
def _active_params_b(params: Scalar | None) -> float | None:
    """'80B/3B' -> 3.0 (active parameters of an MoE), '7B' -> 7.0, '600M' -> 0.6."""
    if not isinstance(params, str):
        return (
            float(params)
            if isinstance(params, int | float) and not isinstance(params, bool)
            else None
        )
    found = re.findall(r"([\d.]+)\s*([BM])", params.upper())
    if not found:
        return None
    number, unit = found[-1]
    return float(number) / (1000 if unit == "M" else 1)


def decode_bound(claim: Claim, canon: Canon) -> float | None:
    """Single-stream decode cannot beat memory bandwidth x TP / bytes of weights read per token."""
    tp = claim.scope.get("tp", 1)
    memo = (
        claim.scope.get("gpu"),
        claim.scope.get("quant", ""),
        claim.finding.attributes.get("params"),
        tp if isinstance(tp, int) and not isinstance(tp, bool) else 1,
    )
    if memo not in canon.bounds:
        gpu = canon.reg.hardware.gpu.get(str(memo[0]))  # scope names are canonical
        bits = canon.reg.hardware.quant_bits.get(str(memo[1]).upper())
        active = _active_params_b(memo[2])
        bound = (
            None
            if gpu is None or bits is None or not active
            else gpu.bandwidth_gb_s * memo[3] / (active * bits / 8)
        )
        canon.bounds[memo] = bound
    return canon.bounds[memo]


def _plausibility(claim: Claim, canon: Canon) -> list[str]:
    reg = canon.reg
    rules, value = claim.predicate.rules, claim.value
    problems = []
    if "decode_bandwidth_bound" in rules and isinstance(value, int | float):
        bound = decode_bound(claim, canon)
        if bound is not None and value > bound:
            gpu = reg.hardware.gpu.get(str(claim.scope.get("gpu")))  # scope names are canonical
            assert gpu is not None
            problems.append(
                f"{_fmt(value)} tokens/s cannot be single-stream decode: {claim.scope.get('gpu')} reads "
                f"{gpu.bandwidth_gb_s:g} GB/s, and {claim.finding.attributes.get('params')} parameters at "
                f"{claim.scope.get('quant')} allow at most {bound:.1f} tokens/s at TP {claim.scope.get('tp', 1)}"
            )
    if "efficiency_at_most_100" in rules and isinstance(value, int | float) and value > 100:
        problems.append(
            f"scaling efficiency of {_fmt(value)}% is above 100%: batching cannot beat perfect scaling"
        )
    if "hardware_registry" in rules and isinstance(value, int | float):
        gpu = reg.hardware.gpu.get(claim.subject)
        if gpu is not None and abs(gpu.memory_gb - value) > claim.predicate.tolerance_abs:
            problems.append(
                f"{claim.subject} has {gpu.memory_gb:g} GB ({gpu.source}), not {_fmt(value)} GB"
            )
    return problems


# ---------------------------------------------------------------- clustering


def _agree(a: Scalar, b: Scalar, predicate: Predicate) -> bool:
    numeric = predicate.type == "number" and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b)
    )
    if not numeric:
        return a == b
    assert isinstance(a, int | float) and isinstance(b, int | float)
    tolerance = max(predicate.tolerance_abs, predicate.tolerance_rel * max(abs(a), abs(b)))
    return abs(a - b) <= tolerance


def clusters(claims: Sequence[Claim]) -> list[list[Claim]]:
    """Greedy clustering in value order: a value joins the cluster whose first value it agrees with."""
    predicate = claims[0].predicate
    # numbers and bools compare with each other; text only with text
    ordered = sorted(claims, key=lambda c: (isinstance(c.value, str), c.value, c.finding.id))
    groups: list[list[Claim]] = []
    for claim in ordered:
        if groups and _agree(groups[-1][0].value, claim.value, predicate):
            groups[-1].append(claim)
        else:
            groups.append([claim])
    return groups


def _representative(group: Sequence[Claim]) -> Scalar:
    values = sorted(c.value for c in group)
    return values[(len(values) - 1) // 2]  # the lower median: always a value someone reported


def _best_tier(group: Sequence[Claim]) -> Tier | None:
    tiers = [c.tier for c in group if c.tier is not None]
    return max(tiers, key=TIER_RANK.__getitem__, default=None)


def _rank(group: Sequence[Claim]) -> tuple[int, str]:
    tier = _best_tier(group)
    return (TIER_RANK[tier] if tier else 0, max(c.newest for c in group))


def _side(group: Sequence[Claim], note: str | None = None) -> ConflictSide:
    return ConflictSide(
        value=_representative(group),
        findings=tuple(sorted(c.finding.id for c in group)),
        best_tier=_best_tier(group),
        origins=len(set().union(*(c.origins for c in group))),
        newest=max(c.newest for c in group),
        note=note,
    )


def _hidden_scope(groups: Sequence[Sequence[Claim]]) -> str:
    """Attributes whose values differ between the sides: the likely hidden scope."""
    keys = sorted({k for g in groups for c in g for k in c.finding.attributes})
    differing = []
    for key in keys:
        per_side = [{c.finding.attributes.get(key) for c in g} for g in groups]
        if len({json.dumps(sorted(map(str, s))) for s in per_side}) > 1:
            differing.append(
                f"{key} ({' vs '.join('/'.join(sorted(map(str, s))) for s in per_side)})"
            )
    return (
        f" The sides differ in {', '.join(differing)}: a hidden scope difference?"
        if differing
        else ""
    )


# ---------------------------------------------------------------- per key


class _Verdict:
    def __init__(
        self,
        status: FactStatus,
        chosen: Sequence[Claim],
        rule: str,
        losers: Sequence[Claim] = (),
        conflict: Conflict | None = None,
    ) -> None:
        self.status, self.chosen, self.rule, self.losers, self.conflict = (
            status,
            chosen,
            rule,
            losers,
            conflict,
        )


def _judge_key(key: str, claims: Sequence[Claim]) -> _Verdict:
    first = claims[0]
    unit = first.predicate.unit or first.finding.unit
    implausible = [c for c in claims if c.implausible]
    candidates = [c for c in claims if c.tier is not None and not c.implausible]
    if implausible:
        sides = [_side([c], "; ".join(c.implausible)) for c in implausible]
        if candidates:
            sides.append(_side(candidates, "plausible"))
        text = "; ".join(sorted({p for c in implausible for p in c.implausible}))
        conflict = Conflict(
            id=conflict_id([key], "physically implausible"),
            keys=(key,),
            reason="physically implausible",
            explanation=text,
            sides=tuple(sides),
        )
        return _Verdict(
            FactStatus.disputed,
            candidates or implausible,
            "rule: physical plausibility",
            conflict=conflict,
        )
    if not candidates:
        stale = any(c.drifted for c in claims)
        status = FactStatus.stale if stale else FactStatus.unverifiable
        why = (
            "its quoted evidence has drifted"
            if stale
            else "no admissible evidence for this predicate's tiers"
        )
        return _Verdict(status, sorted(claims, key=lambda c: c.newest)[-1:], f"rule: {why}")
    groups = clusters(candidates)
    if len(groups) == 1:
        return _Verdict(FactStatus.verified, groups[0], "rule: one value within tolerance")
    ranked = sorted(groups, key=_rank, reverse=True)
    top, rest = ranked[0], ranked[1:]
    losers = [c for g in rest for c in g]
    if _rank(top)[0] > max(_rank(g)[0] for g in rest):
        return _Verdict(
            FactStatus.verified, top, f"rule: better evidence tier ({_best_tier(top)})", losers
        )
    same_tier = [g for g in rest if _rank(g)[0] == _rank(top)[0]]
    if _best_tier(top) == Tier.local and all(_rank(top)[1] > _rank(g)[1] for g in same_tier):
        return _Verdict(FactStatus.verified, top, "rule: newer local run on the same scope", losers)
    numeric = first.predicate.type == "number"
    values = ", ".join(
        f"{_fmt(_representative(g), unit)} ({len(g)} finding{'s' if len(g) > 1 else ''})"
        for g in ranked
    )
    tol = (
        f" beyond the tolerance ({first.predicate.tolerance_rel:.0%})"
        if first.predicate.tolerance_rel
        else f" beyond ±{first.predicate.tolerance_abs:g}"
        if first.predicate.tolerance_abs
        else ""
    )
    explanation = (
        f"{len(groups)} values of {first.finding.predicate} for {first.subject} ({_scope_words(first.scope)}) "
        f"disagree{tol}: {values}; the evidence is of the same tier ({_best_tier(top) or 'none'}) and none is a "
        f"newer local run.{_hidden_scope(ranked)}"
    )
    reason: ConflictReason = "numeric disagreement" if numeric else "value disagreement"
    conflict = Conflict(
        id=conflict_id([key], reason),
        keys=(key,),
        reason=reason,
        explanation=explanation,
        sides=tuple(_side(g) for g in ranked),
    )
    return _Verdict(FactStatus.disputed, top, "rule: tie, sent to triage", losers, conflict)


# ---------------------------------------------------------------- cross-key rules


def _claims_vs_measurements(by_key: Mapping[str, Sequence[Claim]]) -> list[Conflict]:
    """A broad claim ('X does not serve MoE on sm_120') against measurements inside its scope."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, claims in by_key.items():
        if "claim_vs_measurement" in claims[0].predicate.rules:
            groups[(claims[0].subject, claims[0].finding.predicate)].append(key)
    conflicts = []
    for keys in groups.values():
        for broad in keys:
            b = by_key[broad]
            inside = [
                k
                for k in keys
                if k != broad
                and _within(by_key[k][0].scope, b[0].scope)
                and any(c.finding.attributes.get("measured") for c in by_key[k])
                and {c.value for c in by_key[k]} != {c.value for c in b}
            ]
            if not inside or all(c.finding.attributes.get("measured") for c in b):
                continue
            first = b[0]
            shown = [by_key[k][0] for k in inside[:3]]
            examples = "; ".join(f"{_fmt(c.value)} for {_scope_words(c.scope)}" for c in shown)
            explanation = (
                f"claimed: {first.subject} {first.finding.predicate} = {_fmt(first.value)} for "
                f"{_scope_words(first.scope)} ({first.finding.statement!r}); measured otherwise inside that "
                f"scope {len(inside)} time{'s' if len(inside) > 1 else ''}: {examples}"
            )
            sides = [_side(b, "claim")] + [_side(by_key[k], "measurement") for k in inside]
            conflicts.append(
                Conflict(
                    id=conflict_id([broad, *inside], "claim vs measurement"),
                    keys=tuple(sorted([broad, *inside])),
                    reason="claim vs measurement",
                    explanation=explanation,
                    sides=tuple(sides),
                )
            )
    return conflicts


def _within(narrow: Mapping[str, Scalar], broad: Mapping[str, Scalar]) -> bool:
    return len(narrow) > len(broad) and all(narrow.get(k) == v for k, v in broad.items())


# ---------------------------------------------------------------- decisions


def _decisions(findings: Iterable[Finding]) -> dict[str, tuple[Decision, str]]:
    """The latest decision per conflict id, with when it was made."""
    made = sorted(
        (f for f in findings if f.kind == "decision"), key=lambda f: (f.observed_at, f.id)
    )
    return {
        f.decision.conflict: (f.decision, f.observed_at) for f in made if f.decision is not None
    }


def _lapsed(
    decision: Decision, at: str, conflict: Conflict, by_key: Mapping[str, Sequence[Claim]]
) -> bool:
    """Newer local evidence that disagrees with what the person accepted ends the decision."""
    accepted = {
        c.value for k in conflict.keys for c in by_key.get(k, ()) if c.finding.id in decision.accept
    }
    for key in conflict.keys:
        for c in by_key.get(key, ()):
            if c.tier == Tier.local and c.newest > at and c.value not in accepted:
                return True
    return False


def _apply(decision: Decision, who: str, fact: Fact, by_key: Mapping[str, Sequence[Claim]]) -> Fact:
    if decision.action == "reject":
        return fact.model_copy(update={"status": FactStatus.deprecated, "decided_by": who})
    if decision.action == "defer":
        return fact
    chosen = [c for c in by_key[fact.key] if c.finding.id in decision.accept]
    if not chosen:
        return fact  # the person accepted findings of another key of this conflict
    others = tuple(sorted(c.finding.id for c in by_key[fact.key] if c not in chosen))
    return _fact(fact.key, chosen, FactStatus.verified, who, fact.conflict, others)


# ---------------------------------------------------------------- the whole pass


def _fact(
    key: str,
    chosen: Sequence[Claim],
    status: FactStatus,
    rule: str,
    conflict: str | None,
    superseded: Sequence[str] = (),
) -> Fact:
    first = sorted(chosen, key=lambda c: (c.newest, c.finding.id))[-1]
    value = _representative(chosen)
    return Fact(
        id="f_" + _hash(key, value),
        key=key,
        subject=first.subject,
        predicate=first.finding.predicate,
        scope=first.scope,
        value=value,
        unit=first.predicate.unit or first.finding.unit,
        status=status,
        statement=first.finding.statement,
        findings=tuple(sorted(c.finding.id for c in chosen)),
        evidence=_evidence(chosen),
        independent_origins=len(set().union(*(c.origins for c in chosen))),
        decided_by=rule,
        conflict=conflict,
        supersedes=tuple(sorted(superseded)),
    )


def _evidence(chosen: Sequence[Claim]) -> tuple[EvidenceOutcome, ...]:
    """One line per cited source, with how many findings cited it."""
    counts: dict[Outcome, int] = defaultdict(int)
    for claim in chosen:
        for outcome in set(claim.outcomes):
            counts[outcome] += 1
    return tuple(
        EvidenceOutcome(kind=k, locator=loc, tier=tier, status=status, message=msg, findings=n)
        for (k, loc, tier, status, msg), n in sorted(
            counts.items(), key=lambda item: item[0][:2] + item[0][3:]
        )
    )


def _splits(findings: Sequence[Finding], canon: Canon, checks: Checks) -> dict[str, str]:
    """Keys a person split by an attribute: key -> attribute."""
    splits = {}
    for conflict, (decision, _) in _decisions(findings).items():
        if decision.action == "split" and decision.accept:
            attr = decision.accept[0]
            for f in findings:
                if (
                    f.kind == "claim"
                    and conflict_id([Claim(f, canon, checks, {}).key], "numeric disagreement")
                    == conflict
                ):
                    splits[Claim(f, canon, checks, {}).key] = attr
    return splits


def reconcile(findings: Sequence[Finding], checks: Checks, reg: Registries) -> FactsFile:
    """Facts and conflicts from findings; the same inputs always give the same bytes."""
    # A pass allocates a few objects per finding and frees them all at the end: the cyclic
    # garbage collector would rescan them over and over (measured: a third of the time at 100k).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _reconcile(findings, checks, reg)
    finally:
        if enabled:
            gc.enable()


def _reconcile(findings: Sequence[Finding], checks: Checks, reg: Registries) -> FactsFile:
    canon = Canon(reg)
    split = _splits(findings, canon, checks)
    claims = [Claim(f, canon, checks, split) for f in findings if f.kind == "claim"]
    for claim in claims:
        claim.implausible = _plausibility(claim, canon)
    by_key: dict[str, list[Claim]] = defaultdict(list)
    for claim in claims:
        by_key[claim.key].append(claim)

    facts: dict[str, Fact] = {}
    conflicts: dict[str, Conflict] = {}
    for key, group in by_key.items():
        verdict = _judge_key(key, group)
        if verdict.conflict is not None:
            conflicts[verdict.conflict.id] = verdict.conflict
        losers = [c.finding.id for c in verdict.losers]
        facts[key] = _fact(
            key,
            verdict.chosen,
            verdict.status,
            verdict.rule,
            verdict.conflict.id if verdict.conflict else None,
            losers,
        )
    for conflict in _claims_vs_measurements(by_key):
        conflicts[conflict.id] = conflict
        for key in conflict.keys:
            if facts[key].status == FactStatus.verified:
                facts[key] = facts[key].model_copy(
                    update={
                        "status": FactStatus.disputed,
                        "conflict": conflict.id,
                        "decided_by": "rule: claim vs measurement",
                    }
                )

    for cid, (decision, at) in _decisions(findings).items():
        decided = conflicts.get(cid)
        if decided is None or decision.action == "split":
            continue
        conflict = decided
        if _lapsed(decision, at, conflict, by_key):
            conflicts[cid] = conflict.model_copy(
                update={
                    "decision": f"{decision.action} by {decision.by} lapsed: newer local evidence disagrees"
                }
            )
            continue
        who = f"decision by {decision.by}: {decision.reason}"
        state: Literal["decided", "deferred"] = (
            "deferred" if decision.action == "defer" else "decided"
        )
        conflicts[cid] = conflict.model_copy(
            update={"state": state, "decision": f"{decision.action}: {who}"}
        )
        for key in conflict.keys:
            facts[key] = _apply(decision, who, facts[key], by_key)

    return FactsFile(
        facts=tuple(sorted(facts.values(), key=lambda f: f.key)),
        conflicts=tuple(sorted(conflicts.values(), key=lambda c: c.id)),
    )
