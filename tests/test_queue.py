from __future__ import annotations

from datetime import timedelta

import pytest

from swarm.core.errors import (
    Conflict,
    Duplicate,
    InvalidInput,
    LeaseLost,
    NotFound,
    NothingClaimable,
    UnknownAgent,
)
from swarm.core.models import NewTask, Requires, TaskState
from swarm.db.store import Store
from swarm.queue import queue
from tests.conftest import T0, gpu, register

LEASE = 60.0


def add(store: Store, title: str = "t", **fields: object) -> str:
    return queue.add_task(store, NewTask(kind="other", title=title, **fields), T0).id  # type: ignore[arg-type]


def test_claim_returns_the_task_with_a_lease_whose_epoch_is_the_fencing_token(
    store: Store,
) -> None:
    register(store, "a")
    task_id = add(store)
    claim = queue.claim(store, "a", T0, LEASE)
    assert claim.task.id == task_id
    assert claim.task.state == TaskState.claimed
    assert claim.lease.epoch == 1
    assert claim.lease.holder == "a"
    assert claim.lease.expires_at == "2026-11-27T12:01:00.000000Z"


def test_claim_takes_the_highest_priority_then_the_oldest(store: Store) -> None:
    register(store, "a")
    first_low, high, second_low = (
        add(store, "low1"),
        add(store, "high", priority=5),
        add(store, "low2"),
    )
    order = [queue.claim(store, "a", T0, LEASE).task.id for _ in range(3)]
    assert order == [high, first_low, second_low]


def test_a_task_is_not_claimable_until_its_dependencies_are_done(store: Store) -> None:
    register(store, "a")
    dep = add(store, "dep")
    child = add(store, "child", depends_on=(dep,))
    assert queue.get_task(store, child).blocked_by == (dep,)
    claim = queue.claim(store, "a", T0, LEASE)
    assert claim.task.id == dep
    with pytest.raises(NothingClaimable, match="1 task waits for their dependencies"):
        queue.claim(store, "a", T0, LEASE)
    queue.report(store, dep, claim.lease.epoch, "done", T0)
    assert queue.claim(store, "a", T0, LEASE).task.id == child


def test_nothing_claimable_says_what_the_pending_tasks_wait_for(store: Store) -> None:
    register(store, "cpu-only")
    add(store, "a", requires=Requires(arch="sm_121"))
    add(store, "b", requires=Requires(arch="sm_121"))
    add(store, "c", requires=Requires(tools=("nvcc",)))
    with pytest.raises(NothingClaimable) as err:
        queue.claim(store, "cpu-only", T0, LEASE)
    assert str(err.value) == (
        "nothing claimable for cpu-only: 2 tasks wait for an sm_121 host; "
        "1 task waits for tools: nvcc"
    )
    assert err.value.exit_code == 3


def test_claim_matches_arch_gpu_name_host_and_tools(store: Store) -> None:
    register(
        store, "spark", gpu("NVIDIA GB10", "sm_121", 128, "GPU-S"), host="spark", tools=("nvcc",)
    )
    register(store, "pro", gpu(), host="pro6000", tools=("docker",))
    spark_task = add(store, "s", requires=Requires(arch="SM121", tools=("nvcc",)))
    pro_task = add(store, "p", requires=Requires(gpu="rtx pro 6000", host="pro6000"))
    assert queue.claim(store, "pro", T0, LEASE).task.id == pro_task
    assert queue.claim(store, "spark", T0, LEASE).task.id == spark_task


def test_gpu_shares_never_overcommit_a_gpu(store: Store) -> None:
    card = gpu(gb=96)
    register(store, "a", card)
    register(store, "b", card)  # a second agent on the same host sees the same GPU
    big1 = add(store, "big1", requires=Requires(gpu_mem_gb=60))
    big2 = add(store, "big2", requires=Requires(gpu_mem_gb=60))
    small = add(store, "small", requires=Requires(gpu_mem_gb=36))
    first = queue.claim(store, "a", T0, LEASE)
    assert first.task.id == big1 and first.lease.gpu and first.lease.gpu.gb == 60
    # big2 does not fit beside big1 and waits; it reserves the GPU, so small may not jump ahead
    with pytest.raises(NothingClaimable, match="2 tasks wait for a leased GPU to free up"):
        queue.claim(store, "b", T0, LEASE)
    queue.report(store, big1, first.lease.epoch, "done", T0)
    assert queue.claim(store, "b", T0, LEASE).task.id == big2
    assert queue.claim(store, "a", T0, LEASE).task.id == small  # 60 + 36 = 96: an exact fit


def test_an_exclusive_task_waits_for_a_gpu_nobody_holds_and_then_blocks_others(
    store: Store,
) -> None:
    register(store, "a", gpu())
    shared = add(store, "shared", requires=Requires(gpu_mem_gb=1))
    exclusive = add(store, "bench", requires=Requires(exclusive=True), priority=-1)
    later = add(store, "later", requires=Requires(gpu_mem_gb=1), priority=-2)
    held = queue.claim(store, "a", T0, LEASE)
    assert held.task.id == shared
    with pytest.raises(NothingClaimable, match="2 tasks wait for a leased GPU to free up"):
        queue.claim(
            store, "a", T0, LEASE
        )  # 'later' would fit, but the waiting bench reserves the GPU
    queue.report(store, shared, held.lease.epoch, "done", T0)
    bench = queue.claim(store, "a", T0, LEASE)
    assert bench.task.id == exclusive and bench.lease.gpu and bench.lease.gpu.exclusive
    with pytest.raises(NothingClaimable):
        queue.claim(store, "a", T0, LEASE)
    assert queue.get_task(store, later).state == TaskState.pending


def test_report_with_a_stale_epoch_is_refused_and_changes_nothing(store: Store) -> None:
    register(store, "a")
    register(store, "b")
    task_id = add(store, max_attempts=5)
    old = queue.claim(store, "a", T0, LEASE)
    later = T0 + timedelta(seconds=LEASE + 1)
    new = queue.claim(store, "b", later, LEASE)  # a's lease expired; b reclaims
    assert new.task.id == task_id and new.lease.epoch == 2
    with pytest.raises(LeaseLost, match="now at epoch 2 held by b"):
        queue.report(store, task_id, old.lease.epoch, "done", later, {"v": "zombie"})
    with pytest.raises(LeaseLost):
        queue.heartbeat(store, task_id, old.lease.epoch, later, LEASE)
    with pytest.raises(LeaseLost):
        queue.release(store, task_id, old.lease.epoch, later)
    task = queue.get_task(store, task_id)
    assert task.state == TaskState.claimed and task.lease and task.lease.holder == "b"
    assert queue.task_results(store, task_id) == []


def test_the_same_report_twice_is_one_result(store: Store) -> None:
    register(store, "a")
    task_id = add(store)
    claim = queue.claim(store, "a", T0, LEASE)
    first = queue.report(store, task_id, claim.lease.epoch, "done", T0, {"tps": 1.5}, "ok")
    again = queue.report(store, task_id, claim.lease.epoch, "done", T0, {"tps": 1.5}, "ok")
    assert again == first
    assert len(queue.task_results(store, task_id)) == 1


def test_a_different_report_for_the_same_attempt_is_a_conflict(store: Store) -> None:
    register(store, "a")
    task_id = add(store)
    claim = queue.claim(store, "a", T0, LEASE)
    queue.report(store, task_id, claim.lease.epoch, "done", T0, {"tps": 1.5})
    with pytest.raises(Conflict):
        queue.report(store, task_id, claim.lease.epoch, "failed", T0, {"tps": 0})


def test_heartbeat_extends_the_lease_so_the_task_is_not_reclaimed(store: Store) -> None:
    register(store, "a")
    register(store, "b")
    task_id = add(store)
    claim = queue.claim(store, "a", T0, LEASE)
    beat_at = T0 + timedelta(seconds=50)
    lease = queue.heartbeat(store, task_id, claim.lease.epoch, beat_at, LEASE)
    assert lease.expires_at == "2026-11-27T12:01:50.000000Z"
    with pytest.raises(NothingClaimable):
        queue.claim(store, "b", T0 + timedelta(seconds=100), LEASE)
    assert queue.reap(store, T0 + timedelta(seconds=100)) == []


def test_expired_leases_go_back_to_pending_then_fail_after_max_attempts(store: Store) -> None:
    register(store, "a", gpu())
    task_id = add(store, max_attempts=2, requires=Requires(gpu_mem_gb=10))
    now = T0
    for attempt in (1, 2):
        claim = queue.claim(store, "a", now, LEASE)
        assert claim.task.attempts == attempt
        now += timedelta(seconds=LEASE + 1)
        reclaimed = queue.reap(store, now)
        assert [(r.task_id, r.holder, r.epoch) for r in reclaimed] == [(task_id, "a", attempt)]
    task = queue.get_task(store, task_id)
    assert task.state == TaskState.failed
    assert task.note == "lease of a (epoch 2) expired; gave up after 2 attempts"
    assert task.lease is None
    actions = [e.action for e in queue.task_events(store, task_id)]
    assert actions == ["added", "claimed", "expired -> pending", "claimed", "expired -> failed"]


def test_reaping_frees_the_gpu_share(store: Store) -> None:
    register(store, "a", gpu())
    add(store, "x", requires=Requires(exclusive=True))
    y = add(store, "y", requires=Requires(exclusive=True))
    queue.claim(store, "a", T0, LEASE)
    later = T0 + timedelta(seconds=LEASE + 1)
    assert queue.claim(store, "a", later, LEASE).task.id != y  # x came back first, by order


def test_release_returns_the_task_without_spending_an_attempt(store: Store) -> None:
    register(store, "a")
    task_id = add(store)
    claim = queue.claim(store, "a", T0, LEASE)
    task = queue.release(store, task_id, claim.lease.epoch, T0, note="need a bigger GPU")
    assert (task.state, task.attempts, task.note) == (TaskState.pending, 0, "need a bigger GPU")
    assert queue.claim(store, "a", T0, LEASE).lease.epoch == 2


def test_a_second_deploy_of_the_same_deployment_under_another_spelling_is_refused(
    store: Store,
) -> None:
    spec = {
        "gpu": "RTX Pro 6000",
        "model": "Qwen3-32B-NVFP4",
        "platform": "trt-llm",
        "quant": "NVFP4",
    }
    first = queue.add_task(store, NewTask(kind="deploy", title="d", spec=spec), T0)
    respelled = {**spec, "platform": "tensorrt-llm", "model": "nvidia/qwen3-32b-nvfp4"}
    with pytest.raises(Duplicate, match=first.id):
        queue.add_task(store, NewTask(kind="deploy", title="d2", spec=respelled), T0)
    assert queue.get_task(store, first.id).spec["platform"] == "trt-llm"  # spelling kept


def test_an_explicit_dedupe_key_is_normalised(store: Store) -> None:
    add(store, dedupe_key="Check NVFP4  facts")
    with pytest.raises(Duplicate):
        add(store, dedupe_key="check_nvfp4_facts")


def test_bad_input_is_refused_with_the_field_named_and_nothing_written(store: Store) -> None:
    with pytest.raises(InvalidInput, match="unknown kind 'dance'"):
        queue.add_task(store, NewTask(kind="dance", title="x"), T0)
    with pytest.raises(InvalidInput, match="invalid deploy spec: model is required"):
        queue.add_task(
            store, NewTask(kind="deploy", title="x", spec={"gpu": "g", "platform": "p"}), T0
        )
    with pytest.raises(InvalidInput, match="imagee is not a known field"):
        queue.add_task(
            store, NewTask(kind="kernel", title="x", spec={"name": "k", "imagee": 1}), T0
        )
    with pytest.raises(NotFound, match="nope"):
        add(store, depends_on=("nope",))
    assert queue.list_tasks(store) == []


def test_unknown_tasks_and_agents_are_reported_as_such(store: Store) -> None:
    with pytest.raises(NotFound, match="no task 'x'"):
        queue.get_task(store, "x")
    with pytest.raises(NotFound):
        queue.report(store, "x", 1, "done", T0)
    add(store)
    with pytest.raises(UnknownAgent, match="swarm agent register"):
        queue.claim(store, "ghost", T0, LEASE)


def test_list_tasks_pages_with_a_cursor_and_filters(store: Store) -> None:
    ids = [add(store, str(i)) for i in range(5)]
    page = queue.list_tasks(store, limit=2)
    assert [t.id for t in page] == ids[:2]
    assert [t.id for t in queue.list_tasks(store, limit=10, after=page[-1].id)] == ids[2:]
    register(store, "a")
    queue.claim(store, "a", T0, LEASE)
    assert [t.id for t in queue.list_tasks(store, states=["claimed"])] == ids[:1]


def test_claim_can_be_limited_to_kinds(store: Store) -> None:
    register(store, "a")
    add(store, "other first")
    research = queue.add_task(
        store, NewTask(kind="research", title="r", spec={"question": "q"}), T0
    )
    assert queue.claim(store, "a", T0, LEASE, kinds=["research"]).task.id == research.id
    with pytest.raises(InvalidInput):
        queue.claim(store, "a", T0, LEASE, kinds=["nope"])
