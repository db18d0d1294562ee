"""Each reconciler rule, on findings built in the test and the committed registries.

The checks passed in are what the checker would derive (tests/test_citations.py proves that
part): a quoted document supports at its tier, a run is local evidence from its agent's host.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.facts.citations import Check, capped, source
from swarm.facts.findings import Decision, Evidence, Finding, Quote
from swarm.facts.reconcile import Checks, FactStatus, conflict_id, newer_environment, reconcile
from swarm.facts.registry import Registries
from tests.conftest import REPO

REG = Registries.load(REPO / "facts")
SCOPE = {"gpu": "RTX Pro 6000", "arch": "sm_120", "platform": "vllm", "quant": "NVFP4", "tp": 1}
DOC = Evidence(kind="doc", locator="facts/evidence/seed_README.txt", quote=Quote(exact="x"))
RUN = Evidence(kind="run", locator="res-1", metric="single_tps")
counter = iter(range(100_000))


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
        id=f"fd_{next(counter):05d}",
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


def local(value: Any, agent: str, at: str = "2026-11-01", **env: str) -> Finding:
    """A finding citing a run by `agent` (its own host), with the run's recorded environment."""
    f = claim(value, RUN, agent=agent, at=at)
    ENV[f.id] = env
    return f


ENV: dict[str, dict[str, str]] = {}


def decision(
    judged: list[Finding],
    action: str,
    accept: tuple[str, ...] = (),
    at: str = "2026-11-10",
    split_by: str | None = None,
    undoes: str | None = None,
) -> Finding:
    return Finding(
        id=f"fd_{next(counter):05d}",
        agent="lab-lead",
        observed_at=f"{at}T00:00:00.000000Z",
        subject="c_x",
        predicate="decision",
        value=action,
        statement="because",
        kind="decision",
        decision=Decision(
            conflict="c_x",
            action=action,
            findings=tuple(f.id for f in judged),
            accept=accept,
            split_by=split_by,
            undoes=undoes,
            reason="because",
            by="lab-lead",
        ),
    )


def derived(f: Finding, ev: Evidence, status: str) -> Check:
    if status != "ok" or (ev.kind != "run" and ev.quote is None):
        return Check(status=status, message="m")  # type: ignore[arg-type]
    if ev.kind == "run":
        return Check(status="ok", message="m", strength=capped(ev), origin=f"{f.agent}@host",
                     environment=ENV.get(f.id, {}))  # fmt: skip
    return Check(status="ok", message="m", strength=capped(ev), origin=source(ev))


def ok_checks(findings: list[Finding], status: str = "ok") -> Checks:
    return {(f.id, i): derived(f, ev, status) for f in findings for i, ev in enumerate(f.evidence)}


def run(findings: list[Finding], checks: Checks | None = None) -> Any:
    return reconcile(findings, checks or ok_checks(findings), REG)


def only(facts: Any) -> Any:
    (fact,) = [f for f in facts.facts if f.status != FactStatus.superseded]
    return fact


def test_agreeing_values_within_tolerance_are_one_verified_fact_counting_origins_not_agents() -> (
    None
):
    same_doc = [claim(100.0, agent=f"agent{i}") for i in range(3)]
    other = claim(105.0, Evidence(kind="doc", locator="docs/other.md", quote=Quote(exact="105")))
    fact = only(run([*same_doc, other]))
    assert fact.status == FactStatus.verified and fact.value == 100.0
    assert fact.independent_origins == 2  # three agents citing one document are one origin


def test_values_that_disagree_open_a_conflict_whatever_their_tier() -> None:
    seed, measured = claim(20.2), local(11.0, "spark-1")
    out = run([seed, measured])
    assert only(out).status == FactStatus.disputed
    (conflict,) = out.conflicts
    assert conflict.reason == "numeric disagreement" and conflict.state == "open"


def test_two_independent_local_origins_outvote_one_and_the_loser_is_kept_as_superseded() -> None:
    agree = [local(11.2, "spark-1"), local(11.0, "spark-2"), local(10.9, "spark-3")]
    newer = local(16.0, "spark-4", at="2026-11-20")
    out = run([*agree, newer])
    fact = only(out)
    assert (fact.status, fact.value, out.conflicts) == (FactStatus.verified, 11.0, ())
    assert "3 independent local origins" in fact.decided_by
    (old,) = [f for f in out.facts if f.status == FactStatus.superseded]
    assert (old.value, old.superseded_by, old.findings) == (16.0, fact.id, (newer.id,))


def test_twenty_agents_on_one_host_are_not_independent_of_each_other() -> None:
    same = [claim(11.0, RUN, agent="spark-1") for _ in range(3)]
    out = run([*same, local(16.0, "spark-2")])
    assert only(out).status == FactStatus.disputed


def test_recency_alone_never_decides() -> None:
    old, new = local(131.0, "a", at="2026-10-01"), local(95.0, "b", at="2026-11-20")
    assert only(run([old, new])).status == FactStatus.disputed


def test_a_newer_run_with_a_newer_recorded_environment_supersedes_the_older_one() -> None:
    old = local(20.2, "a", at="2026-10-01", engine="vllm", engine_version="0.20.1")
    new = local(11.0, "b", at="2026-11-20", engine="vllm", engine_version="0.21.0")
    out = run([old, new])
    fact = only(out)
    assert (fact.status, fact.value) == (FactStatus.verified, 11.0)
    assert fact.decided_by == "rule: superseded by a run on vllm 0.21.0 (was 0.20.1)"
    (gone,) = [f for f in out.facts if f.status == FactStatus.superseded]
    assert gone.value == 20.2 and gone.superseded_by == fact.id
    older_env = local(11.0, "c", at="2026-11-21", engine="vllm", engine_version="0.19")
    assert only(run([old, older_env])).status == FactStatus.disputed  # a downgrade decides nothing


def test_environment_order_reads_versions_as_numbers() -> None:
    assert newer_environment({"engine_version": "0.10"}, {"engine_version": "0.9"}) is not None
    assert newer_environment({"driver": "580"}, {"driver": "580"}) is None
    assert newer_environment({}, {"driver": "580"}) is None


def test_a_tie_is_a_conflict_that_names_the_hidden_scope_difference() -> None:
    a, b = claim(131.0, vram_gb=44.2), claim(21.5, vram_gb=90.7)
    out = run([a, b])
    (conflict,) = out.conflicts
    assert conflict.reason == "numeric disagreement" and conflict.state == "open"
    assert "131 tokens/s" in conflict.explanation and "21.5 tokens/s" in conflict.explanation
    assert "vram_gb (44.2 vs 90.7)" in conflict.explanation or "vram_gb (90.7 vs 44.2)" in (
        conflict.explanation
    )
    assert only(out).status == FactStatus.disputed


def test_spellings_of_the_same_platform_and_model_are_one_key() -> None:
    a = claim(100.0, subject="nvidia/Qwen3-8B", scope={**SCOPE, "platform": "trt-llm"})
    b = claim(300.0, subject="qwen3-8b", scope={**SCOPE, "platform": "TensorRT-LLM"})
    out = run([a, b])
    assert len(out.facts) == 1 and out.conflicts[0].reason == "numeric disagreement"


def test_spellings_of_every_scope_key_are_one_key_so_contradictions_show() -> None:
    a = claim(100.0, scope={**SCOPE, "tp": "1", "arch": "12.0", "platform": "tensorrtllm"})
    b = claim(300.0, scope={**SCOPE, "gpu": "RTX PRO 6000 Blackwell Server Edition",
                            "platform": "trtllm-serve"})  # fmt: skip
    scope = {k: v for k, v in SCOPE.items() if k != "quant"}
    c = claim(100.0, scope={**scope, "precision": "nvfp4", "platform": "TRT-LLM"})
    out = run([a, b, c])
    assert len([f for f in out.facts if f.status != "superseded"]) == 1
    assert out.conflicts[0].reason == "numeric disagreement"


def test_a_text_scope_value_written_as_a_number_is_the_same_key_as_its_text() -> None:
    as_number = claim(100.0, scope={**SCOPE, "cuda": 13.0, "engine_version": 20})
    as_text = claim(300.0, scope={**SCOPE, "cuda": "13.0", "engine_version": "20"})
    out = run([as_number, as_text])
    assert out.conflicts[0].reason == "numeric disagreement", out.conflicts


def test_units_are_converted_before_values_are_compared() -> None:
    per_min = claim(1800.0, DOC)
    per_min = per_min.model_copy(update={"unit": "tokens/min"})
    assert only(run([per_min])).value == 30.0
    h100 = claim(74.5, predicate="memory_gb", subject="H100", scope={})
    assert run([h100.model_copy(update={"unit": "GiB"})]).conflicts == ()  # 80 GB, as specified
    ms = claim(250.0, predicate="ttft_median_ms")
    s = claim(250.0, predicate="ttft_median_ms").model_copy(update={"unit": "s"})
    assert only(run([ms, s.model_copy(update={"value": 0.25})])).status == FactStatus.verified
    assert only(run([ms, s])).status == FactStatus.disputed  # 250 ms and 250 s disagree


def test_findings_that_no_citation_supports_never_verify_a_fact() -> None:
    broken = claim(100.0)
    assert only(run([broken], ok_checks([broken], "broken"))).status == FactStatus.unverifiable
    text = claim("vLLM falls back to Marlin", predicate="statement", subject="vllm", scope={})
    assert only(run([text])).status == FactStatus.unverifiable  # secondary cannot verify free text
    drifted = claim(100.0)
    assert only(run([drifted], ok_checks([drifted], "drifted"))).status == FactStatus.stale
    unquoted = claim(100.0, Evidence(kind="doc", locator="docs/a.md"))
    assert only(run([unquoted])).status == FactStatus.unverifiable  # context, not support


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


def test_tp_counts_only_the_gpus_of_one_host_and_tp_beyond_a_host_asks_a_person() -> None:
    spark = {**SCOPE, "gpu": "DGX Spark", "arch": "sm_121"}
    # a DGX Spark holds one GB10: TP 2 cannot double its 273 GB/s (bound 6.9 tok/s for 70B)
    out = run([claim(12.0, scope={**spark, "tp": 2}, params="70B")])
    reasons = out.conflicts[0].explanation
    assert "TP 2 on DGX Spark" in reasons and "a host holds at most 1" in reasons
    assert "at most 6.9 tokens/s at TP 1" in reasons
    h100 = {**SCOPE, "gpu": "H100", "arch": "sm_90"}
    assert run([claim(1500.0, scope={**h100, "tp": 8}, params="8B")]).conflicts == ()
    (over,) = run([claim(100.0, scope={**h100, "tp": 16}, params="8B")]).conflicts
    assert over.reason == "physically implausible" and "TP 16 on H100" in over.explanation
    assert "DGX H100" in over.explanation  # the source of the GPUs-per-host figure
    # no vendor system says how many RTX 4090s a host holds: no per-host rule, TP multiplies
    rtx = {**SCOPE, "gpu": "RTX 4090", "arch": "sm_89", "tp": 16}
    assert run([claim(1000.0, scope=rtx, params="8B")]).conflicts == ()


def test_a_gpu_memory_figure_in_the_wrong_one_of_gb_and_gib_is_flagged_naming_the_unit() -> None:
    def memory(value: float, unit: str, gpu: str = "H100") -> Any:
        return run([claim(value, predicate="memory_gb", subject=gpu, scope={}, unit=None)
                    .model_copy(update={"unit": unit})])  # fmt: skip

    assert memory(74.5, "GiB").conflicts == ()  # 80 GB, as nvidia-smi's 74.5 GiB says
    assert only(memory(74.5, "GiB")).value == pytest.approx(79.9938)
    (gib_as_gb,) = memory(74.5, "GB").conflicts
    assert "H100 has 80 GB" in gib_as_gb.explanation
    assert "not 74.5 GB: 74.5 is its memory counted in GiB" in gib_as_gb.explanation
    (gb_as_gib,) = memory(80.0, "GiB").conflicts
    assert "not 80 GiB (85.8993 GB): 80 is its memory in GB" in gb_as_gib.explanation
    # on a small card the predicate's 0.5 GB tolerance is wider than the GB/GiB gap: not used
    assert memory(24.0, "GB", "RTX 4090").conflicts == ()
    assert memory(22.35, "GiB", "RTX 4090").conflicts == ()
    assert "counted in GiB" in memory(22.35, "GB", "RTX 4090").conflicts[0].explanation


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


def test_a_broad_claim_reaches_measurements_that_describe_their_type_as_an_attribute() -> None:
    blocked = claim(
        False, predicate="serves", subject="sglang", scope={"arch": "sm_120", "model_type": "MoE"}
    )
    deployment = {"arch": "sm_120", "gpu": "RTX Pro 6000", "model": "m", "quant": "NVFP4"}
    served = claim(True, predicate="serves", subject="sglang", scope=deployment,
                   measured=True, model_type="VLM-MoE")  # fmt: skip
    out = run([blocked, served])
    assert out.conflicts[0].reason == "claim vs measurement"
    assert all(f.status == FactStatus.disputed for f in out.facts)


def test_serves_true_and_false_for_one_deployment_are_never_both_verified() -> None:
    deployment = {"arch": "sm_121", "gpu": "DGX Spark", "model": "m", "quant": "NVFP4"}
    yes = claim(True, predicate="serves", subject="trtllm", scope=deployment, model_type="MoE")
    no = claim(False, predicate="serves", subject="TensorRT-LLM", scope=deployment)
    out = run([yes, no])
    assert [f.status for f in out.facts] == [FactStatus.disputed]


def test_an_implausible_value_is_its_own_side_and_the_others_are_not_lumped_together() -> None:
    spark = {**SCOPE, "gpu": "DGX Spark", "arch": "sm_121"}
    low, high = claim(4.8, scope=spark), claim(42.7, scope=spark)
    wild = claim(900.0, scope=spark)
    out = run([low, high, wild])
    reasons = sorted(c.reason for c in out.conflicts)
    assert reasons == ["numeric disagreement", "physically implausible"]
    implausible = next(c for c in out.conflicts if c.reason == "physically implausible")
    assert sorted(side.value for side in implausible.sides) == [4.8, 42.7, 900.0]


def _tie() -> tuple[Finding, Finding]:
    return claim(131.0, vram_gb=44.2), claim(21.5, vram_gb=90.7)


def test_an_accepted_side_becomes_the_verified_fact_decided_by_a_person() -> None:
    a, b = _tie()
    made = decision([a, b], "accept", (b.id,))
    out = run([a, b, made])
    fact = only(out)
    assert (fact.status, fact.value, fact.decision) == (FactStatus.verified, 21.5, made.id)
    assert fact.decided_by == f"decision {made.id} by lab-lead on 2026-11-10: because"
    assert fact.supersedes == (a.id,) and out.conflicts[0].state == "decided"
    (gone,) = [f for f in out.facts if f.status == FactStatus.superseded]
    assert gone.value == 131.0


def test_a_decision_survives_an_unrelated_finding_on_the_same_key() -> None:
    a, b = _tie()
    made = decision([a, b], "accept", (b.id,))
    unrelated_doc = claim(60.0, Evidence(kind="doc", locator="docs/x.md", quote=Quote(exact="60")))
    out = run([a, b, made, unrelated_doc])
    assert only(out).value == 21.5 and only(out).status == FactStatus.verified


def test_reject_deprecates_and_defer_keeps_it_disputed_and_listed() -> None:
    a, b = _tie()
    assert only(run([a, b, decision([a, b], "reject")])).status == FactStatus.deprecated
    deferred = run([a, b, decision([a, b], "defer")])
    assert deferred.conflicts[0].state == "deferred"
    assert only(deferred).status == FactStatus.disputed


def test_a_split_by_a_hidden_attribute_gives_one_fact_per_value() -> None:
    a, b = _tie()
    out = run([a, b, decision([a, b], "split", split_by="vram_gb")])
    assert out.conflicts == ()
    assert sorted((f.scope["vram_gb"], f.status) for f in out.facts) == [
        (44.2, "verified"),
        (90.7, "verified"),
    ]


def test_a_split_works_on_a_value_disagreement_too() -> None:
    yes = claim(True, predicate="serves", subject="vllm", scope={"gpu": "DGX Spark"}, image="a")
    no = claim(False, predicate="serves", subject="vllm", scope={"gpu": "DGX Spark"}, image="b")
    assert run([yes, no]).conflicts[0].reason == "value disagreement"
    out = run([yes, no, decision([yes, no], "split", split_by="image")])
    assert out.conflicts == () and {f.status for f in out.facts} == {FactStatus.verified}


def test_an_undone_decision_no_longer_applies() -> None:
    a, b = _tie()
    made = decision([a, b], "accept", (b.id,))
    undo = decision([a, b], "undo", undoes=made.id, at="2026-11-11")
    out = run([a, b, made, undo])
    assert only(out).status == FactStatus.disputed and out.conflicts[0].state == "open"


def test_a_decision_lapses_only_on_newer_local_evidence_and_the_lapse_is_recorded() -> None:
    a, b = _tie()
    made = decision([a, b], "accept", (b.id,))
    agreeing = local(22.0, "spark-1", at="2026-11-20")
    kept = run([a, b, made, agreeing])
    assert only(kept).status == FactStatus.verified and only(kept).value == 21.5
    older = local(300.0, "spark-1", at="2026-11-05")  # before the decision: the person saw it
    assert run([a, b, made, older]).conflicts[0].state == "decided"
    newer = local(300.0, "spark-1", at="2026-11-20")
    out = run([a, b, made, newer])
    (conflict,) = out.conflicts
    assert conflict.state == "open" and only(out).status == FactStatus.disputed
    assert conflict.lapsed and "lapsed: newer local evidence" in conflict.lapsed[0]
    assert newer.id in conflict.lapsed[0]


SHUFFLED = [
    claim(131.0),
    claim(21.5),
    claim(96.0, predicate="memory_gb", subject="RTX 5090", scope={}),
    claim(100.0, RUN, subject="Qwen3-32B"),
    local(11.2, "spark-1"),
    local(11.0, "spark-2", at="2026-11-03"),
    local(16.0, "spark-3", at="2026-11-09"),
    claim(True, predicate="serves", subject="sglang", scope={"arch": "sm_120"}),
    claim(False, predicate="serves", subject="sglang", scope={"arch": "sm_120"}),
]
SHUFFLED.append(decision(SHUFFLED[:2], "accept", (SHUFFLED[1].id,)))


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_shuffling_the_findings_never_changes_the_output(rng: random.Random) -> None:
    baseline = run(SHUFFLED).model_dump_json()
    shuffled = SHUFFLED[:]
    rng.shuffle(shuffled)
    assert run(shuffled).model_dump_json() == baseline
    assert conflict_id(["k2", "k1"], "x") == conflict_id(["k1", "k2"], "x")


def test_a_failed_deployment_with_measured_throughput_disputes_both() -> None:
    deployment = {"arch": "sm_121", "gpu": "DGX Spark", "model": "Qwen3-8B", "quant": "NVFP4"}
    failed = claim(False, predicate="serves", subject="vllm", scope=deployment)
    measured = claim(27.6, scope={**SCOPE, "gpu": "DGX Spark", "arch": "sm_121"})
    out = run([failed, measured])
    (conflict,) = out.conflicts
    assert conflict.reason == "claim vs measurement" and "yet its throughput" in (
        conflict.explanation
    )
    assert {f.status for f in out.facts} == {FactStatus.disputed}


def test_names_equal_but_for_the_quant_spelling_on_one_scope_are_a_possible_alias() -> None:
    fp4 = claim(38.6, subject="nvidia/Qwen3-30B-A3B-FP4")
    nvfp4 = claim(60.1, subject="Qwen3-30B-A3B-NVFP4")
    other = claim(20.0, subject="Qwen3-30B-A3B-NVFP4", scope={**SCOPE, "gpu": "RTX 4090"})
    out = run([fp4, nvfp4, other])
    (alias,) = [c for c in out.conflicts if c.reason == "possible alias"]
    assert "qwen3-30b-a3b-fp4 and qwen3-30b-a3b-nvfp4" in alias.explanation
    assert sorted(side.note for side in alias.sides) == ["qwen3-30b-a3b-fp4", "qwen3-30b-a3b-nvfp4"]
    assert {f.status for f in out.facts} == {FactStatus.verified}  # a question, not a dispute


def test_an_unknown_gpu_platform_or_quant_spelling_is_a_triage_item_not_a_skip() -> None:
    odd = claim(500.0, scope={**SCOPE, "gpu": "RTX A6000", "platform": "tensorrt", "quant": "NF4"})
    reasons = [c.explanation.split(" is in")[0] for c in run([odd]).conflicts]
    assert sorted(reasons) == ["gpu 'RTX A6000'", "platform 'tensorrt'", "quant 'NF4'"]
    assert run([claim(100.0)]).conflicts == ()  # known spellings ask nothing


def test_scaling_efficiency_below_zero_is_implausible() -> None:
    out = run([claim(-3.0, predicate="scaling_efficiency_pct", scope={"gpu": "RTX Pro 6000"})])
    assert "below 0" in out.conflicts[0].explanation


def test_a_run_using_more_vram_than_its_gpus_hold_is_implausible() -> None:
    four = {**SCOPE, "gpu": "RTX 4090", "arch": "sm_89"}
    out = run([claim(40.0, scope=four, vram_gb=30.0)])
    assert "30 GB of VRAM, but 1x RTX 4090 holds 24 GB" in out.conflicts[0].explanation
    assert run([claim(40.0, scope={**four, "tp": 2}, vram_gb=30.0)]).conflicts == ()


def test_batched_throughput_below_single_stream_at_one_scope_is_implausible() -> None:
    single = claim(100.0)
    batched = claim(40.0, predicate="throughput_tps_batched")
    out = run([single, batched])
    (conflict,) = out.conflicts
    assert conflict.reason == "physically implausible" and "batching cannot lower" in (
        conflict.explanation
    )
    assert {f.status for f in out.facts} == {FactStatus.disputed}
    assert run([single, claim(1200.0, predicate="throughput_tps_batched")]).conflicts == ()


def test_a_run_without_params_is_bounded_by_the_catalogs_params_for_its_model() -> None:
    spark = {**SCOPE, "gpu": "DGX Spark", "arch": "sm_121"}
    catalog = claim(5.0, scope=spark, params="70B")
    bare = claim(39.9, RUN, scope={**spark, "platform": "sglang"}, agent="spark-1")
    bare = bare.model_copy(update={"attributes": {}})
    out = run([catalog, bare])
    assert any("70B parameters" in c.explanation for c in out.conflicts)
