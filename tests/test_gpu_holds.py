"""A model server holds its GPU from its deploy's claim until its teardown (swarm/queue/gpu_holds.py).

Real queues (SQLite and PostgreSQL, the `store` fixture): a second deploy on that GPU waits,
saying whose server it waits for, until the benchmark that measures the server reports or a
person stops it; the hold is a row in the store, so a fresh store handle (a restarted worker)
sees it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from swarm.core.errors import NothingClaimable
from swarm.core.models import NewTask, Requires
from swarm.db.store import Store, open_store
from swarm.present.board import board
from swarm.queue import queue
from tests.conftest import T0, gpu, register

LEASE = 60.0
NEEDS = Requires(arch="sm_120", gpu="RTX Pro 6000", gpu_mem_gb=40.0)
SERVER = {"endpoint": "http://127.0.0.1:8000", "deployment": {"name": "x"}}


def deploy_and_bench(store: Store, name: str, keep: bool = False) -> tuple[str, str]:
    """A catalog-shaped pair: a deploy (a 40 GB share) and its exclusive benchmark one above."""
    spec = {"gpu": "RTX Pro 6000", "model": name, "platform": "vllm", "keep": keep}
    dep = queue.add_task(store, NewTask(kind="deploy", title=f"deploy {name}", spec=spec,
                                        requires=NEEDS), T0).id  # fmt: skip
    bench = NewTask(kind="benchmark", title=f"benchmark {name}", priority=1, depends_on=(dep,),
                    spec={"gpu": "RTX Pro 6000", "model": name, "platform": "vllm",
                          "deploy_task": dep},
                    requires=Requires(arch="sm_120", gpu="RTX Pro 6000", exclusive=True))  # fmt: skip
    return dep, queue.add_task(store, bench, T0).id


def claim(store: Store, agent: str) -> queue.Claim:
    return queue.claim(store, agent, T0, LEASE)


def test_a_second_deploy_waits_for_the_first_ones_server_until_its_benchmark_ends(
    store: Store,
) -> None:
    register(store, "w1", gpu(gb=96))
    register(store, "w2", gpu(gb=96))
    dep_a, bench_a = deploy_and_bench(store, "a")
    dep_b, _ = deploy_and_bench(store, "b")
    first = claim(store, "w1")
    assert first.task.id == dep_a and first.lease.gpu is not None and first.lease.gpu.exclusive
    with pytest.raises(NothingClaimable, match=f"the model server of {dep_a}"):
        claim(store, "w2")  # two 40 GB shares would fit: the server owns the GPU, not its share
    queue.report(store, dep_a, first.lease.epoch, "done", T0, payload=SERVER)
    # the deploy is done, its server runs: the next deploy still waits, the benchmark does not
    with pytest.raises(NothingClaimable, match=f"deploy --task {dep_a} --down"):
        queue.claim(store, "w2", T0, LEASE, kinds=["deploy"])
    measuring = claim(store, "w2")
    assert measuring.task.id == bench_a and measuring.lease.gpu is not None
    assert measuring.lease.gpu.gpu_uuid == "GPU-0"
    (hold,) = board(store, T0).gpu_holds
    assert hold.task_id == dep_a and f"--task {dep_a} --down" in hold.until
    queue.report(store, bench_a, measuring.lease.epoch, "done", T0, payload={"torn_down": "x"})
    assert board(store, T0).gpu_holds == ()
    assert claim(store, "w1").task.id == dep_b  # torn down: the GPU is free again
    actions = [e.action for e in queue.task_events(store, dep_a)]
    assert actions[-2:] == ["reported done", "gpu released"] and "gpu held" in actions


def test_a_failed_deploy_or_one_without_an_endpoint_holds_nothing(store: Store) -> None:
    register(store, "w", gpu(gb=96))
    dep_a, _ = deploy_and_bench(store, "a")
    dep_b, _ = deploy_and_bench(store, "b")
    first = claim(store, "w")
    queue.report(store, dep_a, first.lease.epoch, "failed", T0, payload={"error": "exited"})
    second = claim(store, "w")
    assert second.task.id == dep_b  # the failed deploy's GPU is free at once
    queue.report(store, dep_b, second.lease.epoch, "done", T0, payload={"note": "no endpoint"})
    assert board(store, T0).gpu_holds == ()


def test_a_deploy_that_leased_no_gpu_logs_no_hold(store: Store) -> None:
    """A server elsewhere (an external endpoint, a task that needs no GPU) holds nothing here,
    and its log must not say it does."""
    register(store, "w", gpu(gb=96))
    spec = {"gpu": "RTX Pro 6000", "model": "remote", "platform": "vllm"}
    dep = queue.add_task(store, NewTask(kind="deploy", title="deploy remote", spec=spec), T0).id
    lease = claim(store, "w").lease
    assert lease.gpu is None
    queue.report(store, dep, lease.epoch, "done", T0, payload=SERVER)
    assert board(store, T0).gpu_holds == ()
    assert "gpu held" not in [e.action for e in queue.task_events(store, dep)]


def test_a_kept_server_holds_its_gpu_past_its_benchmark_until_it_is_stopped(
    store: Store, db: str
) -> None:
    register(store, "w", gpu(gb=96))
    dep_a, bench_a = deploy_and_bench(store, "a", keep=True)
    dep_b, _ = deploy_and_bench(store, "b")
    first = claim(store, "w")
    queue.report(store, dep_a, first.lease.epoch, "done", T0, payload=SERVER | {"keep": True})
    measuring = claim(store, "w")
    queue.report(store, bench_a, measuring.lease.epoch, "done", T0, payload={"torn_down": None})
    later = T0 + timedelta(hours=2)  # long past every lease: a hold does not expire
    queue.reap(store, later)
    restarted = open_store(db)  # a worker started again: the hold is in the store, not in memory
    try:
        with pytest.raises(NothingClaimable, match=f"the model server of {dep_a}"):
            queue.claim(restarted, "w", later, LEASE)
        assert queue.release_server(restarted, dep_a, later, "ann", "stopped by hand")
        assert not queue.release_server(restarted, dep_a, later, "ann", "again: nothing held")
        assert queue.claim(restarted, "w", later, LEASE).task.id == dep_b
    finally:
        restarted.close()


def test_a_benchmark_waiting_behind_another_deploy_is_not_starved_by_that_deploys_wait(
    store: Store,
) -> None:
    """Same priority, the other deploy first in line: its wait reserves the GPU for it, but the
    benchmark measuring the server already there must still run, or neither ever would."""
    register(store, "w", gpu(gb=96))
    spec = {"gpu": "RTX Pro 6000", "platform": "vllm"}
    dep_a = queue.add_task(store, NewTask(kind="deploy", title="deploy a", requires=NEEDS,
                                          spec=spec | {"model": "a"}), T0).id  # fmt: skip
    first = claim(store, "w")
    queue.report(store, dep_a, first.lease.epoch, "done", T0, payload=SERVER)
    queue.add_task(store, NewTask(kind="deploy", title="deploy b", requires=NEEDS,
                                  spec=spec | {"model": "b"}), T0)  # fmt: skip
    bench = queue.add_task(store, NewTask(kind="benchmark", title="bench a", depends_on=(dep_a,),
                                          spec=spec | {"model": "a"},
                                          requires=Requires(arch="sm_120", exclusive=True)), T0)  # fmt: skip
    assert claim(store, "w").task.id == bench.id


def test_a_deploy_on_another_gpu_of_the_host_runs_beside_a_held_one(store: Store) -> None:
    register(store, "w", gpu(uuid="GPU-0"), gpu(uuid="GPU-1", index=1))
    dep_a, _ = deploy_and_bench(store, "a")
    dep_b, _ = deploy_and_bench(store, "b")
    first = claim(store, "w")
    queue.report(store, dep_a, first.lease.epoch, "done", T0, payload=SERVER)
    second = queue.claim(store, "w", T0, LEASE, kinds=["deploy"])
    assert second.task.id == dep_b and second.lease.gpu is not None
    assert second.lease.gpu.gpu_uuid == "GPU-1"
