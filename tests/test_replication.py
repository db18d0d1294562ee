"""Conflicts create their own resolution work: replication tasks routed away from the sides'
agents and hosts, settled by the independent run; stale facts re-measured at a bounded rate."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, T0, gpu, register, swarm_json

from swarm.core.errors import NothingClaimable
from swarm.core.models import Capabilities, NewTask
from swarm.db.store import Store, open_store
from swarm.facts.findings import NewFinding, add_findings, all_findings
from swarm.facts.reconcile import FactsFile
from swarm.lab import pipeline as facts
from swarm.lab import replication
from swarm.present import board
from swarm.queue import agents, queue
from swarm.web import views

MODEL = "Qwen3-Next-80B-A3B-Instruct-NVFP4"
SCOPE: dict[str, str | int | float | bool] = {
    "gpu": "RTX Pro 6000", "arch": "sm_120", "platform": "vllm", "quant": "NVFP4", "tp": 1,
}  # fmt: skip
PRO = "NVIDIA RTX PRO 6000 Blackwell Workstation Edition"


@pytest.fixture
def lab(tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repo's registries in a fresh git repo, with no findings; its database in SWARM_DB."""
    monkeypatch.setenv("SWARM_DB", db)
    shutil.copytree(REPO / "facts", tmp_path / "facts")
    for generated in (facts.LOG, facts.FACTS, facts.RUNS):
        (tmp_path / "facts" / generated).unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def measure(
    store: Store,
    agent: str,
    value: float,
    at: int,
    env: dict[str, str] | None = None,
    model: str = MODEL,
    task_id: str | None = None,
) -> str:
    """`agent` runs a benchmark (a task of its own, or task_id) and reports single_tps = value
    with a finding citing that run; returns the task id."""
    now = T0 + timedelta(minutes=at)
    if task_id is None:
        bench = NewTask(kind="other", title=f"bench by {agent}", spec={"model": model})
        task_id = queue.add_task(store, bench, now).id
    claim = queue.claim(store, agent, now, 600, task_id=task_id)
    finding = NewFinding(
        subject=model,
        predicate="decode_tps_single_stream",
        scope=SCOPE,
        value=value,
        unit="tokens/s",
        statement=f"{model}: {value} tokens/s single stream",
        evidence=({"kind": "run", "locator": "this", "metric": "single_tps"},),  # type: ignore[arg-type]
        attributes={"measured": True},
    )
    payload: dict[str, Any] = {"single_tps": value, "environment": env or {}}
    queue.report(store, task_id, claim.lease.epoch, "done", now, payload, findings=[finding])
    return task_id


def reconcile(store: Store, lab: Path, at: int, **kw: Any) -> tuple[FactsFile, Any]:
    """What `swarm facts reconcile` and the main job's verify task do: reconcile, then sync."""
    outcome = facts.run(store, lab, write=True)
    synced = replication.sync(
        store, outcome.facts, outcome.checks, T0 + timedelta(minutes=at), **kw
    )
    return outcome.facts, synced


def the_fact(found: FactsFile, model: str = MODEL) -> Any:
    (fact,) = [
        f for f in found.facts
        if f.subject == model.lower() and f.status != "superseded"
    ]  # fmt: skip
    return fact


def replications(store: Store) -> list[Any]:
    return [t for t in queue.list_tasks(store, kinds=["benchmark"]) if "replication" in t.spec]


def not_claimable(store: Store, agent: str, task_id: str, at: int) -> str:
    with pytest.raises(NothingClaimable) as refused:
        queue.claim(store, agent, T0 + timedelta(minutes=at), 600, task_id=task_id)
    return str(refused.value)


def three_sides(store: Store) -> None:
    for i, name in enumerate(("a1", "a2", "a3")):
        register(store, name, gpu(PRO, uuid=f"GPU-{i}"), host=f"host-{name}")
    measure(store, "a1", 131.0, at=1)
    measure(store, "a2", 21.5, at=2)
    measure(store, "a3", 7.1, at=3)


def test_a_three_way_conflict_is_settled_by_one_replication_run_no_origin_could_claim(
    lab: Path, db: str
) -> None:
    store = open_store(db)
    three_sides(store)
    register(store, "a1-twin", gpu(PRO, uuid="GPU-9"), host="host-a1")  # an origin's host
    register(store, "spark-3", gpu(PRO, uuid="GPU-4"), host="host-b")

    # the CLI (as the main job's verify task does) queues exactly one replication, with its deploy
    out = swarm_json(lab, "facts", "reconcile")
    assert out["open_conflicts"] == 1 and len(out["replications"]["queued"]) == 1
    (bench,) = replications(store)
    dispute = bench.spec["replication"]
    assert sorted(dispute["values"]) == [7.1, 21.5, 131.0]
    assert dispute["scope"]["gpu"] == "RTX Pro 6000" and dispute["origins"] == ["a1", "a2", "a3"]
    assert bench.requires.arch == "sm_120" and bench.requires.exclusive
    (deploy_id,) = bench.depends_on
    assert queue.get_task(store, deploy_id).kind == "deploy"
    listed = swarm_json(lab, "triage", "list")["conflicts"]
    assert [c["replication"]["task_id"] for c in listed] == [bench.id]
    (work,) = board.board(store, T0).resolution  # and the board (`swarm status`, the web board)
    assert (work.task_id, work.state, work.purpose) == (bench.id, "pending", "replicate")
    outcome = facts.run(store, lab, write=False)  # the web page's conflicts show it too
    (view,) = views.conflict_views(store, outcome, outcome.facts.conflicts, [])
    assert view.replication and view.replication.startswith(f"replication {bench.id} (pending")

    # again, and after an unrelated finding: still the one task
    measure(store, "a1", 40.0, at=4, model="Qwen3-8B")
    _, synced = reconcile(store, lab, at=5)
    assert synced.queued == () and [t.id for t in replications(store)] == [bench.id]

    # no origin, nor anyone on an origin's host, may run it; spark-3 on host-b may
    for agent in ("a1", "a2", "a3"):
        assert "no side's origin" in not_claimable(store, agent, deploy_id, at=6)
    assert "host that is no side's origin" in not_claimable(store, "a1-twin", deploy_id, at=6)
    claim = queue.claim(store, "spark-3", T0 + timedelta(minutes=6), 600, task_id=deploy_id)
    queue.report(store, deploy_id, claim.lease.epoch, "done", T0 + timedelta(minutes=7),
                 {"endpoint": "http://127.0.0.1:8000"})  # fmt: skip
    assert "no side's origin" in not_claimable(store, "a2", bench.id, at=8)
    measure(store, "spark-3", 22.1, at=9, task_id=bench.id)

    settled, synced = reconcile(store, lab, at=10)
    fact = the_fact(settled)
    assert fact.status == "verified"
    assert fact.decided_by == (
        "rule: replication by spark-3 on host-b: 22.1 tokens/s agrees with side 2 (21.5 tokens/s)"
    )
    (conflict,) = settled.conflicts
    assert conflict.state == "decided" and conflict.decision and "spark-3" in conflict.decision
    before = (lab / "facts" / facts.FACTS).read_bytes()
    again, synced = reconcile(store, lab, at=11)
    assert again == settled and synced == replication.SyncReport()
    assert (lab / "facts" / facts.FACTS).read_bytes() == before


def test_a_replication_that_agrees_with_no_side_leaves_the_conflict_open_with_three_sides(
    lab: Path, db: str
) -> None:
    store = open_store(db)
    for i, name in enumerate(("a1", "a2")):
        register(store, name, gpu(PRO, uuid=f"GPU-{i}"), host=f"host-{name}")
    register(store, "spark-3", gpu(PRO, uuid="GPU-4"), host="host-b")
    measure(store, "a1", 131.0, at=1)
    measure(store, "a2", 21.5, at=2)
    reconcile(store, lab, at=3)
    (bench,) = replications(store)
    (deploy_id,) = bench.depends_on
    claim = queue.claim(store, "spark-3", T0 + timedelta(minutes=4), 600, task_id=deploy_id)
    queue.report(store, deploy_id, claim.lease.epoch, "done", T0 + timedelta(minutes=5), {})
    measure(store, "spark-3", 60.0, at=6, task_id=bench.id)

    found, _ = reconcile(store, lab, at=7)
    (conflict,) = found.conflicts
    assert conflict.state == "open" and len(conflict.sides) == 3
    (new_side,) = [s for s in conflict.sides if s.value == 60.0]
    assert new_side.note and "agrees with no side" in new_side.note
    assert the_fact(found).status == "disputed"


def test_a_decided_conflict_cancels_its_pending_replication_and_defer_keeps_it(
    lab: Path, db: str
) -> None:
    from swarm.lab import triage

    store = open_store(db)
    three_sides(store)
    found, _ = reconcile(store, lab, at=4)
    (conflict,) = found.conflicts
    (bench,) = replications(store)
    triage.decide(
        store, lab, conflict.id, "defer", "wait for the run", "ann", T0 + timedelta(minutes=5)
    )
    reconcile(store, lab, at=6)
    assert queue.get_task(store, bench.id).state == "pending"
    side = conflict.sides[0].findings
    triage.decide(store, lab, conflict.id, "accept", "the vendor says so", "ann",
                  T0 + timedelta(minutes=7), accept=side)  # fmt: skip
    _, synced = reconcile(store, lab, at=8)
    assert set(synced.cancelled) == {bench.id, *bench.depends_on}
    assert queue.get_task(store, bench.id).state == "cancelled"
    undo = sorted(f.id for f in all_findings(store) if f.decision and f.decision.action == "accept")
    triage.undo(store, undo[0], "accepted too soon", "ann", T0 + timedelta(minutes=9))
    _, synced = reconcile(store, lab, at=10)  # open again: the same task is pending again
    assert synced.queued and queue.get_task(store, bench.id).state == "pending"


def test_a_person_can_cancel_a_replication_and_it_is_not_queued_again(lab: Path, db: str) -> None:
    store = open_store(db)
    three_sides(store)
    found, _ = reconcile(store, lab, at=4)
    (conflict,) = found.conflicts
    row = replication.cancel(store, found.conflicts, conflict.id, "not worth a GPU", "ann", T0)
    assert row.state == "cancelled" and row.cancelled_by == "ann"
    _, synced = reconcile(store, lab, at=5)
    assert synced.queued == () and len(replications(store)) == 1


def test_a_conflict_that_is_not_measurable_gets_a_research_task(lab: Path, db: str) -> None:
    store = open_store(db)
    for name in ("r1", "r2"):
        register(store, name, host=f"host-{name}")
    said = {True: "SGLang works for MoE on sm_120.", False: "SGLang fails for MoE on sm_120."}
    (lab / "notes.md").write_text("\n".join(said.values()) + "\n")
    for value, at in ((True, 1), (False, 2)):
        measure_bool = NewFinding(
            subject="sglang", predicate="serves", scope={"arch": "sm_120", "model_type": "MoE"},
            value=value, statement=f"sglang serves MoE on sm_120: {value}",
            evidence=({"kind": "doc", "locator": "notes.md", "quote": {"exact": said[value]}},),  # type: ignore[arg-type]
        )  # fmt: skip
        add_findings(store, [measure_bool], f"r{at}", T0 + timedelta(minutes=at))
    found, _ = reconcile(store, lab, at=3)
    (conflict,) = [c for c in found.conflicts if c.state == "open"]
    (task,) = queue.list_tasks(store, kinds=["research"])
    assert "primary source" in task.spec["question"] and "quote" in task.spec["question"]
    assert task.spec["dispute"]["conflict"] == conflict.id
    assert "no side's origin" in not_claimable(store, "r1", task.id, at=4)


def test_a_newer_engine_marks_dependent_facts_stale_and_queues_bounded_re_measurement(
    lab: Path, db: str
) -> None:
    store = open_store(db)
    old = {"engine": "vllm", "engine_version": "0.10.1", "driver": "570.86"}
    register(store, "a1", gpu(PRO), host="host-a1")
    models = ("Qwen3-8B", "Qwen3-14B", "Qwen3-32B")
    for i, model in enumerate(models):
        for _ in range(3 - i):  # Qwen3-8B is the most cited, Qwen3-32B the least
            measure(store, "a1", 50.0 + i, at=i, env=old, model=model)
    found, _ = reconcile(store, lab, at=5)
    assert {the_fact(found, m).status for m in models} == {"verified"}

    caps = Capabilities(host="host-new", gpus=(gpu(PRO, uuid="GPU-7"),), driver="570.86",
                        engines={"vllm": "0.11.0"})  # fmt: skip
    agents.register(store, "b1", caps, T0 + timedelta(minutes=6))
    found, synced = reconcile(store, lab, at=7, max_per_gpu_day=2)
    for m in models:
        fact = the_fact(found, m)
        assert (
            fact.status == "stale" and "host-new runs vllm 0.11.0 (was 0.10.1)" in fact.decided_by
        )
    from_git = facts.run(None, lab, write=False).facts  # facts/stacks.json keeps the hosts' stacks
    assert the_fact(from_git, models[0]).status == "stale"
    queued = [t for t in queue.list_tasks(store, kinds=["benchmark"]) if "re-measure" in t.title]
    assert [t.spec["model"] for t in queued] == ["qwen3-8b", "qwen3-14b"]  # most-cited first
    assert {t.requires.host for t in queued} == {"host-new"}
    assert len(synced.stale) == 1
    _, later = reconcile(store, lab, at=8, max_per_gpu_day=2)
    assert later.queued == ()  # the day's budget is spent
    _, next_day = reconcile(store, lab, at=7 + 24 * 60, max_per_gpu_day=2)
    assert len(next_day.queued) == 1 and next_day.stale == ()


def test_an_agent_whose_finding_joins_the_dispute_later_cannot_run_its_replication(
    lab: Path, db: str
) -> None:
    store = open_store(db)
    three_sides(store)
    register(store, "a4", gpu(PRO, uuid="GPU-5"), host="host-a4")
    register(store, "spark-3", gpu(PRO, uuid="GPU-4"), host="host-b")
    reconcile(store, lab, at=4)
    (bench,) = replications(store)
    (deploy_id,) = bench.depends_on
    (lab / "notes.md").write_text("We saw 131 tokens/s single-stream.\n")
    quoted = NewFinding(  # a4 now stands behind side 131 (with a write-up, not a run)
        subject=MODEL, predicate="decode_tps_single_stream", scope=SCOPE, value=131.0,
        unit="tokens/s", statement="131 tokens/s, as written up",
        evidence=({"kind": "doc", "locator": "notes.md", "quote": {"exact": "131 tokens/s"}},),  # type: ignore[arg-type]
    )  # fmt: skip
    add_findings(store, [quoted], "a4", T0 + timedelta(minutes=5))
    _, synced = reconcile(store, lab, at=6)
    assert synced.queued == () and [t.id for t in replications(store)] == [bench.id]
    assert "no side's origin" in not_claimable(store, "a4", deploy_id, at=7)
    assert queue.claim(store, "spark-3", T0 + timedelta(minutes=7), 600, task_id=deploy_id)
