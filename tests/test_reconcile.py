"""Each reconciler rule, on findings built in the test and the committed registries."""

from __future__ import annotations

import random
from typing import Any

import pytest

from swarm.citations import Check
from swarm.findings import Decision, Evidence, Finding
from swarm.reconcile import Checks, FactStatus, conflict_id, reconcile
from swarm.registry import Registries
from tests.conftest import REPO

REG = Registries.load(REPO / "facts")
SCOPE = {"gpu": "RTX Pro 6000", "arch": "sm_120", "platform": "vllm", "quant": "NVFP4", "tp": 1}
DOC = Evidence(kind="doc", locator="facts/evidence/seed_README.txt")
RUN = Evidence(kind="run", locator="res-1", metric="single_tps")
counter = iter(range(10_000))


def claim(
    value: Any,
    *evidence: Evidence,
    predicate: str = "decode_tps_single_stream",
    subject: str = "Qwen3-8B",
    scope: dict[str, Any] | None = None,
    at: str = "2026-11-01",
    agent: str = "a",
    **attrs: Any,
) -> Finding:
    return Finding(
        id=f"fd_{next(counter):04d}",
        agent=agent,
        observed_at=f"{at}T00:00:00.000000Z",
        subject=subject,
        predicate=predicate,
        scope=SCOPE if scope is None else scope,
        value=value,
        statement=f"{subject} {predicate} {value}",
        evidence=evidence or (DOC,),
        attributes={"params": "8B", **attrs},
    )


def decision(
    conflict: str, action: str, accept: tuple[str, ...] = (), at: str = "2026-11-10"
) -> Finding:
    return Finding(
        id=f"fd_{next(counter):04d}",
        agent="lab-lead",
        observed_at=f"{at}T00:00:00.000000Z",
        subject=conflict,
        predicate="decision",
        value=action,
        statement="because",
        kind="decision",
        decision=Decision(
            conflict=conflict, action=action, accept=accept, reason="because", by="lab-lead"
        ),
    )


def ok_checks(findings: list[Finding], status: str = "ok") -> Checks:
    return {
        (f.id, i): Check(status=status, message="m")
        for f in findings
        for i, _ in enumerate(f.evidence)
    }


def run(findings: list[Finding], checks: Checks | None = None) -> Any:
    return reconcile(findings, checks or ok_checks(findings), REG)


def only(facts: Any) -> Any:
    (fact,) = facts.facts
    return fact


def test_agreeing_values_within_tolerance_are_one_verified_fact_counting_origins_not_agents() -> (
    None
):
    same_doc = [claim(100.0, agent=f"agent{i}") for i in range(3)]
    other = claim(105.0, Evidence(kind="doc", locator="docs/other.md"))
    fact = only(run([*same_doc, other]))
    assert fact.status == FactStatus.verified and fact.value == 100.0
    assert fact.independent_origins == 2  # three agents citing one document are one origin


def test_a_better_evidence_tier_wins_and_the_other_value_is_superseded() -> None:
    seed, local = claim(131.0), claim(95.0, RUN)
    fact = only(run([seed, local]))
    assert (fact.status, fact.value, fact.supersedes) == (FactStatus.verified, 95.0, (seed.id,))
    assert "tier (local)" in fact.decided_by


def test_a_newer_local_run_on_the_same_scope_supersedes_an_older_one() -> None:
    old, new = claim(131.0, RUN, at="2026-10-01"), claim(95.0, RUN, at="2026-11-20")
    fact = only(run([old, new]))
    assert fact.value == 95.0 and "newer local run" in fact.decided_by


def test_a_tie_is_a_conflict_that_names_the_hidden_scope_difference() -> None:
    a, b = claim(131.0, vram_gb=44.2), claim(21.5, vram_gb=90.7)
    out = run([a, b])
    (conflict,) = out.conflicts
    assert conflict.reason == "numeric disagreement" and conflict.state == "open"
    assert "131 tokens/s" in conflict.explanation and "21.5 tokens/s" in conflict.explanation
    assert (
        "differ in vram_gb (90.7 vs 44.2)" in conflict.explanation
        or "vram_gb (44.2 vs 90.7)" in conflict.explanation
    )
    assert only(out).status == FactStatus.disputed


def test_spellings_of_the_same_platform_and_model_are_one_key() -> None:
    a = claim(100.0, subject="nvidia/Qwen3-8B", scope={**SCOPE, "platform": "trt-llm"})
    b = claim(300.0, subject="qwen3-8b", scope={**SCOPE, "platform": "TensorRT-LLM"})
    out = run([a, b])
    assert len(out.facts) == 1 and out.conflicts[0].reason == "numeric disagreement"


def test_findings_without_admissible_evidence_never_verify_a_fact() -> None:
    broken = claim(100.0)
    assert only(run([broken], ok_checks([broken], "broken"))).status == FactStatus.unverifiable
    text = claim("vLLM falls back to Marlin", predicate="statement", subject="vllm", scope={})
    assert only(run([text])).status == FactStatus.unverifiable  # secondary cannot verify free text
    drifted = claim(100.0)
    assert only(run([drifted], ok_checks([drifted], "drifted"))).status == FactStatus.stale


def test_a_decode_rate_above_the_memory_bandwidth_bound_is_implausible() -> None:
    spark = {**SCOPE, "gpu": "DGX Spark", "arch": "sm_121"}
    fast = claim(39.9, scope=spark, params="70B")  # 273 GB/s / (70e9 x 4.5 bits) = 6.9 tok/s
    out = run([fast])
    (conflict,) = out.conflicts
    assert (
        conflict.reason == "physically implausible"
        and "at most 6.9 tokens/s" in conflict.explanation
    )
    assert only(out).status == FactStatus.disputed
    moe = claim(131.0, params="80B/3B")  # 3B active on 1792 GB/s: bound 1062 tok/s
    assert only(run([moe])).status == FactStatus.verified


def test_tensor_parallelism_raises_the_bound() -> None:
    assert run([claim(300.0, params="8B", scope={**SCOPE, "tp": 2})]).conflicts == ()
    assert run([claim(450.0, params="8B")]).conflicts[0].reason == "physically implausible"


def test_scaling_efficiency_above_100_percent_is_suspect() -> None:
    out = run([claim(104.1, predicate="scaling_efficiency_pct", scope={"gpu": "RTX Pro 6000"})])
    assert "above 100%" in out.conflicts[0].explanation


def test_a_memory_claim_is_checked_against_the_hardware_registry() -> None:
    out = run(
        [
            claim(96.0, predicate="memory_gb", subject="RTX 5090", scope={}),
            claim(96.0, predicate="memory_gb", subject="RTX Pro 6000", scope={}),
        ]
    )
    (conflict,) = out.conflicts
    assert "RTX 5090 has 32 GB" in conflict.explanation


def test_a_broad_claim_is_disputed_by_a_measurement_inside_its_scope() -> None:
    blocked = claim(
        False, predicate="serves", subject="sglang", scope={"arch": "sm_120", "model_type": "MoE"}
    )
    served = claim(
        True,
        predicate="serves",
        subject="sglang",
        measured=True,
        scope={
            "arch": "SM120",
            "model_type": "MoE",
            "model": "Qwen3-Next-80B-A3B-FP8",
            "gpu": "RTX Pro 6000",
        },
    )
    dense = claim(
        False,
        predicate="serves",
        subject="sglang",
        measured=True,
        scope={"arch": "sm_120", "model_type": "Dense", "model": "x", "gpu": "RTX Pro 6000"},
    )
    out = run([blocked, served, dense])
    (conflict,) = out.conflicts
    assert (
        conflict.reason == "claim vs measurement"
        and "measured otherwise inside that scope 1 time" in conflict.explanation
    )
    statuses = {f.scope.get("model"): f.status for f in out.facts}
    assert statuses[None] == FactStatus.disputed and statuses["x"] == FactStatus.verified


def _tie() -> tuple[Finding, Finding, str]:
    a, b = claim(131.0), claim(21.5)
    cid = run([a, b]).conflicts[0].id
    return a, b, cid


def test_an_accepted_side_becomes_the_verified_fact_decided_by_a_person() -> None:
    a, b, cid = _tie()
    out = run([a, b, decision(cid, "accept", (b.id,))])
    fact = only(out)
    assert (fact.status, fact.value) == (FactStatus.verified, 21.5)
    assert fact.decided_by == "decision by lab-lead: because" and fact.supersedes == (a.id,)
    assert out.conflicts[0].state == "decided"


def test_reject_deprecates_and_defer_keeps_it_disputed_out_of_the_queue() -> None:
    a, b, cid = _tie()
    assert only(run([a, b, decision(cid, "reject")])).status == FactStatus.deprecated
    deferred = run([a, b, decision(cid, "defer")])
    assert (
        deferred.conflicts[0].state == "deferred" and only(deferred).status == FactStatus.disputed
    )


def test_a_split_by_a_hidden_attribute_gives_one_fact_per_value() -> None:
    a, b = claim(131.0, vram_gb=44.2), claim(21.5, vram_gb=90.7)
    cid = run([a, b]).conflicts[0].id
    out = run([a, b, decision(cid, "split", ("vram_gb",))])
    assert out.conflicts == ()
    assert sorted((f.scope["vram_gb"], f.status) for f in out.facts) == [
        (44.2, "verified"),
        (90.7, "verified"),
    ]


def test_a_decision_holds_until_newer_local_evidence_contradicts_it() -> None:
    a, b, cid = _tie()
    kept = run([a, b, decision(cid, "accept", (b.id,)), claim(22.0, RUN, at="2026-11-20")])
    assert only(kept).status == FactStatus.verified  # the local run agrees with what was accepted
    later = claim(300.0, RUN, at="2026-11-20")
    out = run([a, b, decision(cid, "accept", (b.id,)), later])
    assert only(out).value == 300.0 and only(out).status == FactStatus.verified  # local tier wins
    lapsed = run(
        [
            a,
            b,
            decision(cid, "accept", (b.id,)),
            claim(300.0, RUN, at="2026-11-20"),
            claim(200.0, RUN, at="2026-11-20"),
        ]
    )
    assert any("lapsed" in (c.decision or "") for c in lapsed.conflicts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_result_does_not_depend_on_the_order_of_the_findings(seed: int) -> None:
    findings = [
        claim(131.0),
        claim(21.5),
        claim(96.0, predicate="memory_gb", subject="RTX 5090", scope={}),
        claim(100.0, RUN, subject="Qwen3-32B"),
    ]
    baseline = run(findings).model_dump_json()
    shuffled = findings[:]
    random.Random(seed).shuffle(shuffled)
    assert run(shuffled).model_dump_json() == baseline
    assert conflict_id(["k2", "k1"], "x") == conflict_id(["k1", "k2"], "x")
