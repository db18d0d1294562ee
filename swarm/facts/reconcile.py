"""The reconciler: a pure, deterministic function of findings, their checks, the registries and the
human decisions -> facts and conflicts.

Order (DESIGN.md): evidence checked mechanically, its strength derived by the checker (the caller
passes the checks) -> entities normalised through the alias registry -> findings that no citation
supports set aside -> plausibility rules -> values clustered per key within the predicate's
tolerance -> one cluster: verified; several: independent origins decide (a side with two or more
independent local origins against a side of one wins), or a newer run that records a newer
environment supersedes the older runs; anything else, whatever the tiers, is a conflict for a
person. Recency alone never decides. Cross-key rules (claim vs measurement) add conflicts that
no single key shows. Decisions are attached to the findings they judged and hold until newer
local evidence disagrees with them; the lapse is recorded.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, TypeVar, cast

from pydantic import Field

from swarm import SCHEMA_VERSION
from swarm.core.limits import STORED
from swarm.core.models import Model
from swarm.facts import units
from swarm.facts.citations import Check
from swarm.facts.findings import TIER_RANK, VALUE_TYPES, Finding, Scalar, Tier, value_fits
from swarm.facts.registry import UNKNOWN_PREDICATE, Gpu, Predicate, Registries

Checks = Mapping[tuple[str, int], Check]  # (finding id, evidence index) -> outcome


class FactStatus(StrEnum):
    verified = "verified"
    disputed = "disputed"
    stale = "stale"  # its evidence was good once, and has since drifted
    superseded = "superseded"
    deprecated = "deprecated"  # rejected by a person
    unverifiable = "unverifiable"  # no admissible evidence


ConflictReason = Literal[
    "numeric disagreement",
    "value disagreement",
    "physically implausible",
    "claim vs measurement",
    "possible alias",  # two names of one checkpoint? accepting a side records the alias
    "unknown spelling",  # a GPU, platform or quant no registry knows: rules cannot check it
]


class EvidenceOutcome(Model):
    """One cited source of a fact and how its check came out; `findings` counts who cited it."""

    kind: str
    locator: str
    strength: Tier | None = Field(description="what the checker derived; None: context only")
    status: str
    message: str
    findings: int


OUTCOME_FIELDS = set(EvidenceOutcome.model_fields)  # shared by every EvidenceOutcome built here


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
    superseded_by: str | None = Field(None, description="the fact that replaced this value")
    decision: str | None = Field(None, description="the decision (finding id) that set it")


FACT_FIELDS = set(Fact.model_fields)


class ConflictSide(Model):
    value: Scalar
    findings: tuple[str, ...]
    best_tier: Tier | None
    origins: int
    local_origins: int = 0
    newest: str
    note: str | None = None


class Conflict(Model):
    id: str
    keys: tuple[str, ...]
    reason: ConflictReason
    explanation: str
    sides: tuple[ConflictSide, ...]
    state: Literal["open", "decided", "deferred"] = "open"
    decision: str | None = Field(None, description="who decided what, when and why")
    decision_id: str | None = None
    lapsed: tuple[str, ...] = Field((), description="decisions that lapsed, and why")


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


Outcome = tuple[str, str, Tier | None, str, str]  # kind, locator, strength, status, message
H = TypeVar("H", bound=Hashable)
NO_ENVIRONMENT: Mapping[str, str] = MappingProxyType({})  # shared by every claim without one
NO_VALUES: Mapping[str, Scalar | None] = MappingProxyType({})  # no scope, no attributes


class Canon:
    """The registries with memoised canonical names: they run for every value of every finding."""

    def __init__(self, reg: Registries) -> None:
        self.reg = reg
        self._names: dict[tuple[str, Scalar], Scalar] = {}
        self._keys: dict[tuple[object, ...], str] = {}
        self._scopes: dict[tuple[tuple[str, Scalar], ...], dict[str, Scalar]] = {}
        self.bounds: dict[tuple[Scalar | None, ...], float | None] = {}
        # a model's parameter count as other findings (the catalog's) give it, for the
        # findings that do not say (a local run reports throughput, not the model's size)
        self.params: dict[str, Scalar] = {}
        self._shared: dict[tuple[object, ...], object] = {}
        self._same: dict[Hashable, Hashable] = {}
        self.texts = cast(Callable[[str, str], str], {}.setdefault)  # text(v) without a call more

    def shared(self, mapping: Mapping[str, Scalar | None]) -> dict[str, Scalar | None]:
        """One (read-only) dict for every finding that wrote the same scope or attributes, so
        100k findings over a few thousand keys keep a few thousand dicts. Keyed by repr: 1,
        1.0 and true are equal in Python and different in JSON."""
        if not mapping:
            return NO_VALUES  # type: ignore[return-value]
        memo = (*mapping, *map(repr, mapping.values()))
        found = self._shared.get(memo)
        if found is None:
            found = self._shared[memo] = dict(mapping)
        return found  # type: ignore[return-value]

    def same(self, value: H) -> H:
        """One object for equal outcome tuples and origin sets: most findings cite what others
        cite."""
        return self._same.setdefault(value, value)  # type: ignore[return-value]

    def text(self, value: str) -> str:
        """One string object for values many findings repeat (timestamps, agents)."""
        return self.texts(value, value)

    def view(self, finding: Finding) -> FindingView:
        return FindingView(finding, self)

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
            names = self.reg.scope.names  # 'precision' is keyed as 'quant'
            renamed = {names.get(k, k): v for k, v in scope.items()}
            found = self._scopes[memo] = {k: self.name(k, renamed[k]) for k in sorted(renamed)}
        return found

    def key(self, subject: str, predicate: str, scope: Mapping[str, Scalar]) -> str:
        """'subject|predicate|{scope json}', memoised: most findings share their key with others."""
        memo = (subject, predicate, *scope.items())
        found = self._keys.get(memo)
        if found is None:
            found = self._keys[memo] = f"{subject}|{predicate}|{json.dumps(scope, sort_keys=True)}"
        return found


def _in_unit(
    finding: Finding | FindingView, predicate: Predicate
) -> tuple[Scalar, tuple[str, ...]]:
    """The finding's value in its predicate's unit, or as written with why it cannot be."""
    value = finding.value
    if predicate != UNKNOWN_PREDICATE and not value_fits(value, predicate.type):
        # refused at input since; a finding recorded before is a question, not a crash
        return value, (f"{value!r} is not {VALUE_TYPES[predicate.type]}",)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value, ()
    found = units.factor(finding.unit, predicate.unit) if finding.unit and predicate.unit else 1.0
    if isinstance(found, str):  # refused at input since; a finding recorded before stays visible
        return value, (f"unit {found}",)
    value = value if found == 1.0 else float(f"{value * found:.12g}")
    wrong = predicate.out_of_range(value)  # refused at input since: a question, not a crash
    return value, ((f"{finding.predicate} {wrong}",) if wrong else ())


class FindingView:
    """What the reconciler keeps of a finding once its citations are checked: no evidence, and
    its scope and attributes shared with the findings that wrote the same ones. At 100k findings
    the pydantic models (about 4 kB each) would be most of a pass's memory."""

    __slots__ = ("agent", "attributes", "id", "observed_at", "predicate", "scope", "statement",
                 "subject", "unit", "value")  # fmt: skip

    def __init__(self, finding: Finding, canon: Canon) -> None:
        text = canon.texts  # 100k findings a pass: the lookups are bound once
        self.id = finding.id
        self.subject = text(finding.subject, finding.subject)
        self.predicate = text(finding.predicate, finding.predicate)
        self.scope: Mapping[str, Scalar] = canon.shared(finding.scope)  # type: ignore[assignment]
        self.attributes: Mapping[str, Scalar | None] = canon.shared(finding.attributes)
        self.value = finding.value
        self.unit = None if finding.unit is None else text(finding.unit, finding.unit)
        self.statement = finding.statement
        self.agent = text(finding.agent, finding.agent)
        self.observed_at = text(finding.observed_at, finding.observed_at)


class Claim:
    """A finding as the reconciler sees it: canonical key, derived strength, origins, rules."""

    # one per finding: slots keep 100k of them small
    __slots__ = ("arbiter", "base_key", "drifted", "environment", "finding", "implausible", "key",
                 "local_origins", "newest", "origins", "outcomes", "predicate", "problems",
                 "scope", "subject", "tier", "value")  # fmt: skip

    def __init__(self, finding: Finding, canon: Canon, checks: Checks) -> None:
        self.finding = canon.view(finding)
        self.predicate: Predicate = canon.reg.predicate(finding.predicate)
        kind = self.predicate.subject
        self.subject = finding.subject if kind == "text" else str(canon.name(kind, finding.subject))
        self.value, self.problems = _in_unit(finding, self.predicate)
        self.newest = self.finding.observed_at
        self.scope = canon.scope(finding.scope)
        self.key = self.base_key = canon.key(self.subject, finding.predicate, self.scope)
        outcomes = []
        tiers: list[Tier] = []
        origins: set[str] = set()
        local: set[str] = set()
        env: dict[str, str] = {}
        self.arbiter: str | None = None  # agent@host of a replication run queued for this key
        for i, ev in enumerate(finding.evidence):
            check = checks[(finding.id, i)]
            strength = check.strength if check.status == "ok" else None
            outcomes.append(
                (str(ev.kind), ev.snapshot or ev.locator, strength, check.status, check.message)
            )
            if strength is None or strength not in self.predicate.verify_tiers:
                continue
            tiers.append(strength)
            origin = check.origin or f"{ev.kind}:{ev.snapshot or ev.locator}".lower()
            origins.add(origin)
            if strength == Tier.local:
                local.add(origin)
                env.update(check.environment)
                if check.replicates == self.base_key:
                    self.arbiter = origin
        self.outcomes: tuple[Outcome, ...] = canon.same(tuple(outcomes))
        self.tier: Tier | None = max(tiers, key=TIER_RANK.__getitem__, default=None)
        # independent origins: an agent on a host, or a source; twenty agents citing one page
        # are one origin
        self.origins = canon.same(frozenset(origins))
        self.local_origins = canon.same(frozenset(local))
        self.environment: Mapping[str, str] = env or NO_ENVIRONMENT
        self.drifted = any(o[3] == "drifted" for o in self.outcomes)
        self.implausible: tuple[str, ...] = ()

    def split_by(self, attr: str, canon: Canon) -> None:
        """A person split this key by an attribute: it becomes part of the scope."""
        value = self.finding.attributes.get(attr)
        self.scope = {**self.scope, attr: "unknown" if value is None else value}
        self.key = canon.key(self.subject, self.finding.predicate, self.scope)


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


def _params(claim: Claim, canon: Canon) -> Scalar | None:
    own = claim.finding.attributes.get("params")
    return own if own is not None else canon.params.get(claim.subject)


def _tp(claim: Claim) -> int:
    """The claim's TP as a GPU count (1 when it names none)."""
    tp = claim.scope.get("tp", 1)
    return tp if isinstance(tp, int) and not isinstance(tp, bool) and tp > 0 else 1


def decode_bound(claim: Claim, canon: Canon) -> float | None:
    """Single-stream decode cannot beat memory bandwidth x TP / bytes of weights read per token."""
    memo = (
        claim.scope.get("gpu"),
        claim.scope.get("quant", ""),
        _params(claim, canon),
        _tp(claim),
    )
    if memo not in canon.bounds:
        gpu = canon.reg.hardware.gpu.get(str(memo[0]))  # scope names are canonical
        bits = canon.reg.hardware.quant_bits.get(str(memo[1]).upper())
        active = _active_params_b(memo[2])
        bound = (
            None
            if gpu is None or bits is None or not active
            else gpu.bandwidth_gb_s * _host_tp(memo[3], gpu) / (active * bits / 8)
        )
        canon.bounds[memo] = bound
    return canon.bounds[memo]


def _host_tp(tp: int, gpu: Gpu) -> int:
    """The GPUs tensor parallelism can spread over: those of one host, however many are named."""
    return tp if gpu.max_gpus_per_host is None else max(1, min(tp, gpu.max_gpus_per_host))


def _tp_over_hosts(claim: Claim, reg: Registries) -> str | None:
    """TP above the GPUs one host of that product holds: not a run as described."""
    tp, name = claim.scope.get("tp"), claim.scope.get("gpu")
    gpu = reg.hardware.gpu.get(str(name))  # scope names are canonical
    if not isinstance(tp, int) or isinstance(tp, bool) or gpu is None:
        return None
    if gpu.max_gpus_per_host is None or tp <= gpu.max_gpus_per_host:
        return None
    return (
        f"TP {tp} on {name}: tensor parallelism runs over the GPUs of one host, and a host holds "
        f"at most {gpu.max_gpus_per_host} ({gpu.host_source or gpu.source})"
    )


# GB and GiB differ by 7.4%: a GPU's memory is compared within less than half that gap (the
# predicate's absolute tolerance is coarser than it for small cards), so a figure in the one
# unit is never taken for the other.
GIB_IN_GB = 2**30 / 1e9


def _memory_mismatch(claim: Claim, gpu: Gpu, value: float) -> str | None:
    """A GPU memory figure (in GB, converted from the finding's unit) against the registry's,
    naming the unit mix-up when the figure is the right amount in the other unit."""
    gap = gpu.memory_gb * (GIB_IN_GB - 1) / 2
    tolerance = min(claim.predicate.tolerance_abs or gap, gap)
    if abs(gpu.memory_gb - value) <= tolerance:
        return None
    written = _fmt(claim.finding.value, claim.finding.unit or claim.predicate.unit)
    converted = "" if value == claim.finding.value else f" ({_fmt(value)} GB)"
    why = ""
    if abs(value * GIB_IN_GB - gpu.memory_gb) <= tolerance:
        why = f": {_fmt(claim.finding.value)} is its memory counted in GiB; record the unit GiB"
    elif abs(value / GIB_IN_GB - gpu.memory_gb) <= tolerance:
        why = f": {_fmt(claim.finding.value)} is its memory in GB; record the unit GB"
    return f"{claim.subject} has {gpu.memory_gb:g} GB ({gpu.source}), not {written}{converted}{why}"


def _plausibility(claim: Claim, canon: Canon) -> list[str]:
    reg = canon.reg
    rules, value = claim.predicate.rules, claim.value
    problems = []
    over = _tp_over_hosts(claim, reg)
    if over:
        problems.append(over)
    if "decode_bandwidth_bound" in rules and isinstance(value, int | float):
        bound = decode_bound(claim, canon)
        if bound is not None and value > bound:
            gpu = reg.hardware.gpu.get(str(claim.scope.get("gpu")))  # scope names are canonical
            assert gpu is not None
            problems.append(
                f"{_fmt(value)} tokens/s cannot be single-stream decode: {claim.scope.get('gpu')} reads "
                f"{gpu.bandwidth_gb_s:g} GB/s, and {_params(claim, canon)} parameters at "
                f"{claim.scope.get('quant')} allow at most {bound:.1f} tokens/s at TP "
                f"{_host_tp(_tp(claim), gpu)}"
            )
    if "efficiency_at_most_100" in rules and isinstance(value, int | float) and value > 100:
        problems.append(
            f"scaling efficiency of {_fmt(value)}% is above 100%: batching cannot beat perfect scaling"
        )
    if "efficiency_at_most_100" in rules and isinstance(value, int | float) and value < 0:
        problems.append(f"scaling efficiency of {_fmt(value)}% is below 0: no throughput is")
    vram = claim.finding.attributes.get("vram_gb")
    if "vram_within_memory" in rules and isinstance(vram, int | float) and vram > 0:
        gpu = reg.hardware.gpu.get(str(claim.scope.get("gpu")))
        tp = claim.scope.get("tp", 1)
        gpus = tp if isinstance(tp, int) and not isinstance(tp, bool) and tp > 0 else 1
        if gpu is not None and vram > gpu.memory_gb * gpus + 0.5:
            problems.append(
                f"the run used {_fmt(vram)} GB of VRAM, but {gpus}x {claim.scope.get('gpu')} "
                f"hold{'s' if gpus == 1 else ''} {gpu.memory_gb * gpus:g} GB"
            )
    if "hardware_registry" in rules and isinstance(value, int | float):
        gpu = reg.hardware.gpu.get(claim.subject)
        mismatch = None if gpu is None else _memory_mismatch(claim, gpu, value)
        if mismatch:
            problems.append(mismatch)
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
    # a stored row of another type (a text among numbers) sorts after, never raises
    values = sorted((c.value for c in group), key=lambda v: (isinstance(v, str), v))
    return values[(len(values) - 1) // 2]  # the lower median: always a value someone reported


def _best_tier(group: Sequence[Claim]) -> Tier | None:
    tiers = [c.tier for c in group if c.tier is not None]
    return max(tiers, key=TIER_RANK.__getitem__, default=None)


def _origins(group: Sequence[Claim]) -> frozenset[str]:
    return frozenset().union(*(c.origins for c in group))


def _local_origins(group: Sequence[Claim]) -> frozenset[str]:
    return frozenset().union(*(c.local_origins for c in group))


def _newest(group: Sequence[Claim]) -> str:
    return max(c.newest for c in group)


def _side(group: Sequence[Claim], note: str | None = None) -> ConflictSide:
    side = {
        "value": _representative(group),
        "findings": tuple(sorted(c.finding.id for c in group)),
        "best_tier": _best_tier(group),
        "origins": len(_origins(group)),
        "local_origins": len(_local_origins(group)),
        "newest": _newest(group),
        "note": note,
    }
    return ConflictSide.model_validate(side, context=STORED)  # values: validated findings


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
        losers: Sequence[Sequence[Claim]] = (),
        conflict: Conflict | None = None,
    ) -> None:
        self.status, self.chosen, self.rule = status, chosen, rule
        self.losers, self.conflict = losers, conflict
        self.also: list[Conflict] = []  # a disagreement beside an implausible value


def _majority(groups: Sequence[Sequence[Claim]]) -> _Verdict | None:
    """A side with two or more independent local origins against sides of one origin each."""
    ranked = sorted(groups, key=lambda g: (len(_local_origins(g)), _newest(g)), reverse=True)
    top, rest = ranked[0], ranked[1:]
    strong = len(_local_origins(top))
    if strong < 2 or any(len(_origins(g)) > 1 for g in rest):
        return None
    rule = (
        f"rule: independent origins: {strong} independent local origins agree on "
        f"{_fmt(_representative(top))}, against one origin for "
        + ", ".join(_fmt(_representative(g)) for g in rest)
    )
    return _Verdict(FactStatus.verified, top, rule, rest)


def _version(text: str) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", text)
    return tuple(int(p) for p in parts) if parts else None


ENV_LABEL = {"engine_version": "", "driver": "driver ", "cuda": "CUDA ", "image_digest": "image "}


def newer_environment(new: Mapping[str, str], old: Mapping[str, str]) -> str | None:
    """'vllm 0.21 (was 0.20)' when new records a newer stack than old; None when it does not
    (nothing recorded, nothing differs, or a version went backwards)."""
    changed = []
    for key, label in ENV_LABEL.items():
        if key not in new or key not in old or new[key] == old[key]:
            continue
        if key != "image_digest":
            a, b = _version(new[key]), _version(old[key])
            if a is None or b is None or a < b:
                return None
        name = f"{new.get('engine', 'engine')} " if key == "engine_version" else label
        changed.append(f"{name}{new[key]} (was {old[key]})")
    return ", ".join(changed) or None


def _superseding(groups: Sequence[Sequence[Claim]]) -> _Verdict | None:
    """The newest runs win alone only when they record a newer environment than every other."""
    if any(c.tier != Tier.local for g in groups for c in g):
        return None
    ranked = sorted(groups, key=_newest, reverse=True)
    top, rest = ranked[0], ranked[1:]
    env = max(top, key=lambda c: c.newest).environment
    why = []
    for g in rest:
        if _newest(g) >= _newest(top):
            return None
        step = newer_environment(env, max(g, key=lambda c: c.newest).environment)
        if step is None:
            return None
        why.append(step)
    rule = "rule: superseded by a run on " + "; ".join(sorted(set(why)))
    return _Verdict(FactStatus.verified, top, rule, rest)


def _disagreement(key: str, groups: Sequence[Sequence[Claim]]) -> _Verdict:
    first = groups[0][0]
    unit = first.predicate.unit or first.finding.unit
    ranked = sorted(groups, key=lambda g: (len(_origins(g)), _newest(g)), reverse=True)
    values = ", ".join(
        f"{_fmt(_representative(g), unit)} ({len(g)} finding{'s' if len(g) > 1 else ''}, "
        f"{len(_origins(g))} origin{'s' if len(_origins(g)) != 1 else ''})"
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
        f"{len(groups)} values of {first.finding.predicate} for {first.subject} "
        f"({_scope_words(first.scope)}) disagree{tol}: {values}; no side has two independent "
        f"local origins against one, and no newer run records a newer environment."
        f"{_hidden_scope(ranked)}"
    )
    numeric = first.predicate.type == "number"
    reason: ConflictReason = "numeric disagreement" if numeric else "value disagreement"
    conflict = Conflict(
        id=conflict_id([key], reason),
        keys=(key,),
        reason=reason,
        explanation=explanation,
        sides=tuple(_side(g) for g in ranked),
    )
    return _Verdict(
        FactStatus.disputed, ranked[0], "rule: disagreement, sent to triage", ranked[1:], conflict
    )


def _replicated(key: str, groups: Sequence[Sequence[Claim]]) -> _Verdict | None:
    """A replication run the lab queued for this key (swarm/lab/replication.py), by no side's
    origin, settles it when it agrees with exactly one side; agreeing with none, it is one more
    side and a person decides (never a recency win)."""
    runs = [c for g in groups for c in g if c.arbiter]
    sides = clusters([c for g in groups for c in g if not c.arbiter]) if runs else []
    if len(sides) < 2:
        return None  # nothing was in dispute: the usual rules
    arbiters = {c.arbiter for c in runs}
    agents = {str(a).rsplit("@", 1)[0] for a in arbiters}
    if any(arbiters & c.origins or c.finding.agent in agents for s in sides for c in s):
        return None  # not independent of the sides: it counts like any other run
    ranked = sorted(sides, key=lambda g: (len(_origins(g)), _newest(g)), reverse=True)
    value = _representative(runs)
    unit = runs[0].predicate.unit or runs[0].finding.unit
    agree = [i for i, g in enumerate(ranked) if _agree(value, _representative(g), g[0].predicate)]
    arbiter = " and ".join(a.replace("@", " on ") for a in sorted(map(str, arbiters)))
    if len(agree) == 1 and len({_agree(value, c.value, c.predicate) for c in runs}) == 1:
        won = ranked[agree[0]]
        rule = (
            f"rule: replication by {arbiter}: {_fmt(value, unit)} agrees with side "
            f"{agree[0] + 1} ({_fmt(_representative(won), unit)})"
        )
        verdict = _Verdict(FactStatus.verified, [*won, *runs], rule,
                           [g for g in ranked if g is not won])  # fmt: skip
        verdict.conflict = _disagreement(key, ranked).conflict
        assert verdict.conflict is not None
        verdict.conflict = verdict.conflict.model_copy(
            update={"state": "decided", "decision": rule.removeprefix("rule: ")}
        )
        return verdict
    open_ = _disagreement(key, groups)
    assert open_.conflict is not None
    note = f"replication by {arbiter}: agrees with no side (or with several); a person decides"
    sides_ = [
        s.model_copy(update={"note": note}) if set(s.findings) & {c.finding.id for c in runs} else s
        for s in open_.conflict.sides
    ]
    open_.conflict = open_.conflict.model_copy(
        update={"sides": tuple(sides_), "explanation": f"{open_.conflict.explanation} {note}."}
    )
    return open_


def _judge_key(key: str, claims: Sequence[Claim]) -> _Verdict:
    implausible = [c for c in claims if c.implausible]
    candidates = [c for c in claims if c.tier is not None and not c.implausible]
    if not candidates and not implausible:
        stale = any(c.drifted for c in claims)
        status = FactStatus.stale if stale else FactStatus.unverifiable
        why = "its quoted evidence has drifted" if stale else "no citation supports the value"
        return _Verdict(status, sorted(claims, key=lambda c: c.newest)[-1:], f"rule: {why}")
    groups = clusters(candidates) if candidates else []
    if len(groups) == 1:
        verdict = _Verdict(FactStatus.verified, groups[0], "rule: one value within tolerance")
    elif groups:
        verdict = (
            _replicated(key, groups)
            or _majority(groups)
            or _superseding(groups)
            or _disagreement(key, groups)
        )
    else:
        verdict = _Verdict(FactStatus.disputed, implausible, "rule: physical plausibility")
    if not implausible:
        return verdict
    # An implausible value is a question for a person, beside (not mixed into) the others.
    sides = [_side([c], "; ".join(c.implausible)) for c in implausible]
    sides += [_side(g, "plausible") for g in groups]
    conflict = Conflict(
        id=conflict_id([key], "physically implausible"),
        keys=(key,),
        reason="physically implausible",
        explanation="; ".join(sorted({p for c in implausible for p in c.implausible})),
        sides=tuple(sides),
    )
    losers = verdict.losers if verdict.conflict is None else ()
    out = _Verdict(
        FactStatus.disputed, verdict.chosen, "rule: physical plausibility", losers, conflict
    )
    out.also = [verdict.conflict] if verdict.conflict is not None else []
    return out


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
                and _within(by_key[k], b[0].scope)
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


MEASURED = ("decode_tps_single_stream", "throughput_tps_batched")
QUANT_TOKENS = re.compile(
    r"(?<![a-z0-9])(nv-?fp4|mx-?fp4|fp4|fp8|int4|int8|awq|gptq|w4a16|w8a8|bf16|fp16|4-?bit)(?![a-z0-9])"
)


def _stem(model: str) -> str:
    """A model name without its quant-token spelling: 'qwen3-30b-a3b-nvfp4' -> 'qwen3-30b-a3b'."""
    return re.sub(r"-+", "-", QUANT_TOKENS.sub("", model)).strip("-")


def _possible_aliases(by_key: Mapping[str, Sequence[Claim]]) -> list[Conflict]:
    """Model names equal once quant tokens, org prefixes and case are dropped, measured on the
    same scope: one checkpoint under two names? A question for a person, never a merge."""
    groups: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for key, claims in by_key.items():
        c = claims[0]
        if c.predicate.subject != "model" or not any(x.tier for x in claims):
            continue
        scope = json.dumps(c.scope, sort_keys=True)
        groups[(scope, _stem(c.subject))][c.subject].append(key)
    out = []
    for (scope, _), names in sorted(groups.items()):
        if len(names) < 2:
            continue
        keys = sorted(k for n in names for k in names[n])
        sides = tuple(
            _side([c for k in names[n] for c in by_key[k] if c.tier], note=n) for n in sorted(names)
        )
        out.append(
            Conflict(
                id=conflict_id(keys, "possible alias"),
                keys=tuple(keys),
                reason="possible alias",
                explanation=(
                    f"{' and '.join(sorted(names))} differ only in how the quant is spelled, "
                    f"measured on the same scope ({_scope_words(json.loads(scope))}): one "
                    f"checkpoint under {len(names)} names? Accepting a side records the others "
                    "as its aliases in facts/aliases.toml; rejecting says they differ."
                ),
                sides=sides,
            )
        )
    return out


def _unknown_spellings(by_key: Mapping[str, Sequence[Claim]], reg: Registries) -> list[Conflict]:
    """GPU, platform and quant spellings no registry knows: the rules that need them (decode
    bound, memory) cannot check these findings, so a person is asked instead of a silent skip."""
    unknown: dict[tuple[str, str], list[Claim]] = defaultdict(list)
    known: dict[tuple[str, str], bool] = {}  # a few spellings, written by 100k findings

    def is_known(field: str, value: str) -> bool:
        found = known.get((field, value))
        if found is None:
            found = known[(field, value)] = reg.known(field, value)
        return found

    for claims in by_key.values():
        for c in claims:
            for field in ("gpu", "platform", "quant"):
                value = c.finding.scope.get(field)
                if isinstance(value, str) and not is_known(field, value):
                    unknown[(field, value)].append(c)
            kind = c.predicate.subject
            if kind in ("gpu", "platform") and not is_known(kind, c.finding.subject):
                unknown[(kind, c.finding.subject)].append(c)
    out = []
    for (field, spelling), claims in sorted(unknown.items()):
        keys = sorted({c.key for c in claims})
        where = {"gpu": "facts/hardware.toml (or an alias in facts/aliases.toml)"}.get(
            field, "facts/aliases.toml"
        )
        out.append(
            Conflict(
                id=conflict_id([f"{field}={spelling}"], "unknown spelling"),
                keys=tuple(keys),
                reason="unknown spelling",
                explanation=(
                    f"{field} {spelling!r} is in no registry ({len(claims)} finding"
                    f"{'s' if len(claims) != 1 else ''}): the rules that need it cannot check "
                    f"them. Add it to {where}, or reject it as a typo."
                ),
                sides=(_side(claims, note=f"{field}={spelling}"),),
            )
        )
    return out


def _batched_below_single(
    by_key: Mapping[str, Sequence[Claim]], facts: Mapping[str, Fact]
) -> list[Conflict]:
    """Batched throughput below single-stream decode at the same scope: one of them is wrong
    (batching adds streams; it cannot lower the total)."""
    single = {}
    for key, claims in by_key.items():
        c = claims[0]
        if c.finding.predicate == "decode_tps_single_stream":
            single[(c.subject, json.dumps(c.scope, sort_keys=True))] = key
    out = []
    for key, claims in by_key.items():
        c = claims[0]
        if c.finding.predicate != "throughput_tps_batched":
            continue
        other = single.get((c.subject, json.dumps(c.scope, sort_keys=True)))
        if other is None:
            continue
        b, s_ = facts[key].value, facts[other].value
        if not (isinstance(b, int | float) and isinstance(s_, int | float)):
            continue
        if b < s_ * (1 - c.predicate.tolerance_rel):
            out.append(
                Conflict(
                    id=conflict_id([key, other], "physically implausible"),
                    keys=tuple(sorted([key, other])),
                    reason="physically implausible",
                    explanation=(
                        f"batched throughput {_fmt(b)} tokens/s is below single-stream "
                        f"{_fmt(s_)} tokens/s for {c.subject} ({_scope_words(c.scope)}): "
                        "batching cannot lower the total"
                    ),
                    sides=(_side(by_key[other], "single stream"), _side(claims, "batched")),
                )
            )
    return out


def _measured_deployments(
    by_key: Mapping[str, Sequence[Claim]], facts: Mapping[str, Fact]
) -> list[tuple[str, list[str]]]:
    """`serves` keys that say false (or are disputed) while the same deployment has throughput
    measured: (serves key, measurement keys). A server that failed cannot have been measured."""
    measured: dict[tuple[Scalar | None, ...], list[str]] = defaultdict(list)
    for key, claims in by_key.items():
        c = claims[0]
        if c.finding.predicate in MEASURED and facts[key].status == FactStatus.verified:
            at: tuple[Scalar | None, ...] = (
                c.subject,
                c.scope.get("gpu"),
                c.scope.get("platform"),
                c.scope.get("quant"),
            )
            measured[at].append(key)
    out = []
    for key, claims in by_key.items():
        c = claims[0]
        if c.finding.predicate != "serves" or "model" not in c.scope:
            continue
        fact = facts[key]
        if fact.status not in (FactStatus.verified, FactStatus.disputed):
            continue
        if fact.status == FactStatus.verified and fact.value is not False:
            continue
        if not any(c.value is False for c in claims if c.tier is not None):
            continue  # disputed by a broad claim elsewhere: no one says this one failed
        where = (c.scope["model"], c.scope.get("gpu"), c.subject, c.scope.get("quant"))
        if measured.get(where):
            out.append((key, sorted(measured[where])))
    return out


def _within(narrow: Sequence[Claim], broad: Mapping[str, Scalar]) -> bool:
    """Is a measurement inside a broad claim's scope? Descriptive attributes (model_type) count:
    '{arch: sm_120, model_type: MoE}' holds every MoE deployment on sm_120."""
    first = narrow[0]
    if len(first.scope) < len(broad) or first.scope == broad:
        return False
    for k, v in broad.items():
        if first.scope.get(k) == v:
            continue
        described = first.finding.attributes.get(k)
        if not isinstance(described, str) or not isinstance(v, str):
            return False
        if v.lower() not in described.lower().split("-"):  # 'VLM-Dense' is Dense
            return False
    return True


# ---------------------------------------------------------------- decisions


class Made:
    """One recorded decision, in force unless undone."""

    def __init__(self, finding: Finding) -> None:
        assert finding.decision is not None
        self.id, self.at, self.decision = finding.id, finding.observed_at, finding.decision
        self.judged = frozenset(self.decision.findings)

    @property
    def who(self) -> str:
        d = self.decision
        return f"decision {self.id} by {d.by} on {self.at[:10]}: {d.reason}"


def decisions_in_force(findings: Iterable[Finding]) -> list[Made]:
    """Every decision not reversed by a later undo, oldest first."""
    made = sorted(
        (Made(f) for f in findings if f.kind == "decision" and f.decision is not None),
        key=lambda m: (m.at, m.id),
    )
    undone = {m.decision.undoes for m in made if m.decision.action == "undo"}
    return [m for m in made if m.decision.action != "undo" and m.id not in undone]


def _judged_by(made: Made, conflict: Conflict) -> bool:
    sides = {fid for side in conflict.sides for fid in side.findings}
    if made.judged:
        return bool(made.judged & sides)
    return made.decision.conflict == conflict.id  # a decision recorded before findings were kept


class Judged(Model):
    """What a decision's lapse depends on, of one finding on a conflict's side."""

    value: Scalar
    local: bool
    newest: str
    tolerance: tuple[float, float]


def _close(a: Scalar, b: Scalar, tolerance: tuple[float, float]) -> bool:
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if not numeric:
        return a == b
    assert isinstance(a, int | float) and isinstance(b, int | float)
    return abs(a - b) <= max(tolerance[1], tolerance[0] * max(abs(a), abs(b)))


def _lapse(made: Made, conflict: Conflict, judged: Mapping[str, Judged]) -> str | None:
    """Newer local evidence the person did not see, disagreeing with what they decided."""
    d = made.decision
    on_sides = sorted({fid for side in conflict.sides for fid in side.findings})
    seen = made.judged or set(on_sides)
    accepted = [judged[fid] for fid in d.accept if fid in judged]
    for fid in on_sides:
        j = judged.get(fid)
        if j is None or fid in seen or not j.local or j.newest <= made.at:
            continue
        if d.action == "accept" and any(_close(a.value, j.value, j.tolerance) for a in accepted):
            continue
        return (
            f"{d.action} by {d.by} ({made.id}) lapsed: newer local evidence "
            f"{fid} ({_fmt(j.value)}, {j.newest[:10]}) disagrees"
        )
    return None


def settle(
    conflicts: Mapping[str, Conflict], made: Sequence[Made], judged: Mapping[str, Judged]
) -> dict[str, tuple[Conflict, Made | None]]:
    """Each conflict with the decision that holds on it (the latest one not lapsed), if any."""
    out: dict[str, tuple[Conflict, Made | None]] = {}
    for cid in sorted(conflicts):
        conflict = conflicts[cid]
        relevant = [m for m in made if m.decision.action != "split" and _judged_by(m, conflict)]
        lapsed: list[str] = []
        holding = None
        for m in reversed(relevant):  # the latest decision that still holds decides
            why = _lapse(m, conflict, judged)
            if why:
                lapsed.append(why)
                continue
            state: Literal["decided", "deferred"] = (
                "deferred" if m.decision.action == "defer" else "decided"
            )
            conflict = conflict.model_copy(
                update={
                    "state": state,
                    "decision": f"{m.decision.action}: {m.who}",
                    "decision_id": m.id,
                }
            )
            holding = m
            break
        out[cid] = (conflict.model_copy(update={"lapsed": tuple(sorted(lapsed))}), holding)
    return out


class TriageBasis(Model):
    """The conflicts of a pass before any decision, and what deciding them needs: enough to show
    triage its current state without another pass over every finding."""

    conflicts: tuple[Conflict, ...]
    judged: dict[str, Judged]


def _apply(
    made: Made, fact: Fact, by_key: Mapping[str, Sequence[Claim]]
) -> tuple[Fact, list[Fact]]:
    """The fact of one key of a decided conflict, and the values the decision set aside."""
    d = made.decision
    if d.action == "reject":
        return fact.model_copy(
            update={"status": FactStatus.deprecated, "decided_by": made.who, "decision": made.id}
        ), []
    if d.action != "accept":
        return fact, []
    claims = by_key[fact.key]
    chosen = [c for c in claims if c.finding.id in d.accept]
    if not chosen:
        return fact, []  # the person accepted findings of another key of this conflict
    rest = [c for c in claims if c not in chosen]
    won = _fact(
        fact.key, chosen, FactStatus.verified, made.who, fact.conflict, [c.finding.id for c in rest]
    )
    won = won.model_copy(update={"decision": made.id})
    losers = (
        [g for g in clusters(rest)] if rest and rest[0].tier is not None else [rest] if rest else []
    )
    return won, [_superseded(fact.key, g, won, made.who) for g in losers if g]


def _splits(made: Sequence[Made], base: Mapping[str, str]) -> dict[str, str]:
    """Keys a person split by an attribute: base key -> attribute (the latest split wins)."""
    out = {}
    for m in made:
        if m.decision.action == "split" and m.decision.split_by:
            for fid in m.judged:
                if fid in base:
                    out[base[fid]] = m.decision.split_by
        elif m.decision.action == "split" and m.decision.accept:  # recorded before split_by
            out.update(
                {
                    k: m.decision.accept[0]
                    for k in base.values()
                    if conflict_id([k], "numeric disagreement") == m.decision.conflict
                }
            )
    return out


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
    # the values come from findings validated when read: not validated (and copied) again
    return Fact.model_construct(
        FACT_FIELDS,
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
        independent_origins=len(_origins(chosen)),
        decided_by=rule,
        conflict=conflict,
        supersedes=tuple(sorted(superseded)),
    )


def _superseded(key: str, group: Sequence[Claim], winner: Fact, rule: str) -> Fact:
    """A value that lost to another: kept, with its status and what replaced it."""
    fact = _fact(key, group, FactStatus.superseded, rule, winner.conflict)
    return fact.model_copy(update={"superseded_by": winner.id})


def _evidence(chosen: Sequence[Claim]) -> tuple[EvidenceOutcome, ...]:
    """One line per cited source, with how many findings cited it."""
    counts: dict[Outcome, int] = defaultdict(int)
    for claim in chosen:
        for outcome in set(claim.outcomes):
            counts[outcome] += 1

    def order(item: tuple[Outcome, int]) -> tuple[str, ...]:
        (kind, loc, strength, status, msg), _ = item
        return (kind, loc, status, msg, strength or "")

    # built from checked outcomes, not validated again: a validated copy of each string would
    # double the memory of 100k findings' evidence
    return tuple(
        EvidenceOutcome.model_construct(
            OUTCOME_FIELDS, kind=k, locator=loc, strength=tier, status=status, message=msg,
            findings=n,
        )
        for (k, loc, tier, status, msg), n in sorted(counts.items(), key=order)
    )  # fmt: skip


def reconcile(findings: Sequence[Finding], checks: Checks, reg: Registries) -> FactsFile:
    """Facts and conflicts from findings; the same inputs always give the same bytes."""
    return reconcile_with_basis(findings, checks, reg)[0]


def reconcile_with_basis(
    findings: Iterable[Finding], checks: Checks, reg: Registries
) -> tuple[FactsFile, TriageBasis]:
    """reconcile, and the conflicts before decisions with what settling them needs."""
    # A pass allocates a few objects per finding and frees them all at the end: the cyclic
    # garbage collector would rescan them over and over (measured: a third of the time at 100k).
    enabled = gc.isenabled()
    gc.disable()
    try:
        pass_ = Reconciler(reg)
        for finding in findings:
            pass_.add(finding, checks)
        return pass_.finish()
    finally:
        if enabled:
            gc.enable()


class Reconciler:
    """One pass, fed a finding at a time (its citations checked): it keeps a lean Claim per
    claim and the decisions, never the findings, so a caller can stream them from the store."""

    def __init__(self, reg: Registries) -> None:
        self.reg = reg
        self.canon = Canon(reg)
        self.claims: list[Claim] = []
        self.decisions: list[Finding] = []

    def add(self, finding: Finding, checks: Checks) -> None:
        """Take one finding; checks must hold the outcome of each of its citations."""
        if finding.kind == "claim":
            self.claims.append(Claim(finding, self.canon, checks))
        elif finding.decision is not None:
            self.decisions.append(finding)

    def finish(self) -> tuple[FactsFile, TriageBasis]:
        """The facts and conflicts of every finding added, and the triage basis."""
        return _reconcile(self.claims, self.decisions, self.canon)


def _claims(claims: list[Claim], canon: Canon, made: Sequence[Made]) -> dict[str, list[Claim]]:
    known: dict[str, set[str]] = defaultdict(set)
    for c in claims:
        given = c.finding.attributes.get("params")
        if c.predicate.subject == "model" and isinstance(given, str | int | float):
            known[c.subject].add(str(given))
    # the smallest spelling when findings differ: deterministic, whatever the input order
    canon.params = {model: min(values) for model, values in known.items()}
    splitting = any(m.decision.action == "split" for m in made)  # else no 100k-entry map
    split = _splits(made, {c.finding.id: c.base_key for c in claims}) if splitting else {}
    for claim in claims:
        if claim.base_key in split:
            claim.split_by(split[claim.base_key], canon)
        claim.implausible = (*claim.problems, *_plausibility(claim, canon))
    by_key: dict[str, list[Claim]] = defaultdict(list)
    for claim in sorted(claims, key=lambda c: c.finding.id):  # input order never matters
        by_key[claim.key].append(claim)
    return by_key


def _dispute(facts: dict[str, Fact], conflict: Conflict, rule: str) -> None:
    """Mark the verified facts a conflict spans as disputed by it (a fact already settled
    otherwise keeps its status)."""
    for key in conflict.keys:
        if facts[key].status == FactStatus.verified:
            update = {"status": FactStatus.disputed, "conflict": conflict.id, "decided_by": rule}
            facts[key] = facts[key].model_copy(update=update)


def _reconcile(
    claims: list[Claim], decisions: Sequence[Finding], canon: Canon
) -> tuple[FactsFile, TriageBasis]:
    reg = canon.reg
    made = decisions_in_force(decisions)
    by_key = _claims(claims, canon, made)
    facts, replaced, conflicts = _judge_keys(by_key)
    for conflict in _claims_vs_measurements(by_key):
        conflicts[conflict.id] = conflict
        _dispute(facts, conflict, "rule: claim vs measurement")

    for extra in [*_possible_aliases(by_key), *_unknown_spellings(by_key, reg)]:
        conflicts[extra.id] = extra  # questions for a person; the facts keep their status
    for conflict in _batched_below_single(by_key, facts):
        conflicts[conflict.id] = conflict
        _dispute(facts, conflict, "rule: physical plausibility")
    _failed_yet_measured(by_key, facts, conflicts)

    judged = _judged(by_key, conflicts)
    basis = TriageBasis(conflicts=tuple(conflicts[c] for c in sorted(conflicts)), judged=judged)
    for cid, (conflict, holding) in settle(conflicts, made, judged).items():
        conflicts[cid] = conflict
        if holding is None:
            continue
        for key in conflict.keys:
            facts[key], set_aside = _apply(holding, facts[key], by_key)
            if set_aside:
                replaced[key] = set_aside

    every = list(facts.values()) + [f for group in replaced.values() for f in group]
    out = FactsFile(
        facts=tuple(sorted(every, key=lambda f: (f.key, f.status == FactStatus.superseded, f.id))),
        conflicts=tuple(sorted(conflicts.values(), key=lambda c: c.id)),
    )
    return out, basis


def _judge_keys(
    by_key: Mapping[str, list[Claim]],
) -> tuple[dict[str, Fact], dict[str, list[Fact]], dict[str, Conflict]]:
    """Each key judged on its own claims: its fact, the facts a verified value supersedes, and
    the conflicts found."""
    facts: dict[str, Fact] = {}
    replaced: dict[str, list[Fact]] = defaultdict(list)
    conflicts: dict[str, Conflict] = {}
    for key in sorted(by_key):
        verdict = _judge_key(key, by_key[key])
        for conflict in [verdict.conflict, *verdict.also]:
            if conflict is not None:
                conflicts[conflict.id] = conflict
        cid = verdict.conflict.id if verdict.conflict else None
        losers = [c.finding.id for g in verdict.losers for c in g]
        facts[key] = _fact(key, verdict.chosen, verdict.status, verdict.rule, cid, losers)
        if verdict.status == FactStatus.verified:
            replaced[key] = [_superseded(key, g, facts[key], verdict.rule) for g in verdict.losers]
    return facts, replaced, conflicts


def _failed_yet_measured(
    by_key: Mapping[str, list[Claim]], facts: dict[str, Fact], conflicts: dict[str, Conflict]
) -> None:
    """A deployment said to fail whose throughput was measured: its facts and the measurements'
    become one dispute (a new conflict, or the one its serves key already has)."""
    for serves, measured in _measured_deployments(by_key, facts):
        cid = facts[serves].conflict
        if cid is None:  # a verified failure against a measurement: a new conflict
            said = [c for c in by_key[serves] if c.value is False and c.tier is not None]
            first = (said or by_key[serves])[0]  # quote the finding that says it failed
            conflict = Conflict(
                id=conflict_id([serves, *measured], "claim vs measurement"),
                keys=tuple(sorted([serves, *measured])),
                reason="claim vs measurement",
                explanation=(
                    f"{first.subject} failed to serve {first.scope['model']} on "
                    f"{first.scope.get('gpu')} ({first.finding.statement!r}), yet its throughput "
                    f"was measured: "
                    + "; ".join(f"{facts[k].predicate} {_fmt(facts[k].value)}" for k in measured)
                ),
                sides=(
                    _side(by_key[serves], "claim"),
                    *(_side(by_key[k], "measurement") for k in measured),
                ),
            )
            conflicts[conflict.id] = conflict
            cid = conflict.id
        else:  # the serves key is disputed already: its measurements are part of that dispute
            known = conflicts[cid]
            conflicts[cid] = known.model_copy(
                update={"keys": tuple(sorted({*known.keys, *measured}))}
            )
        for key in [serves, *measured]:
            facts[key] = facts[key].model_copy(
                update={
                    "status": FactStatus.disputed,
                    "conflict": cid,
                    "decided_by": "rule: a failed deployment cannot have been measured",
                }
            )


def _judged(
    by_key: Mapping[str, list[Claim]], conflicts: Mapping[str, Conflict]
) -> dict[str, Judged]:
    """What settling needs of each finding on a conflict's side (only those: not every claim)."""
    on_sides = {
        fid for conflict in conflicts.values() for side in conflict.sides for fid in side.findings
    }
    by_id = {
        c.finding.id: c for group in by_key.values() for c in group if c.finding.id in on_sides
    }
    return {
        fid: Judged(
            value=c.value,
            local=c.tier == Tier.local,
            newest=c.newest,
            tolerance=(c.predicate.tolerance_rel, c.predicate.tolerance_abs),
        )
        for conflict in conflicts.values()
        for side in conflict.sides
        for fid in side.findings
        if (c := by_id.get(fid)) is not None
    }
