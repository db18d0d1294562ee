"""GPU routing compares products through the one alias table (facts/aliases.toml), never substrings."""

from __future__ import annotations

import pytest

from swarm.core.errors import NothingClaimable
from swarm.core.models import Capabilities, NewTask, Requires
from swarm.db.store import Store
from swarm.queue import queue, routing
from swarm.queue.routing import GpuUsage, gpu_key, pick_gpu, unmet
from tests.conftest import T0, gpu, register

LEASE = 60.0

# (NVML's name, arch, GB): what `swarm agent register` records on each host of the lab.
PRO_SERVER = ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "sm_120", 95.6)
PRO_WORKSTATION = ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "sm_120", 95.6)
GB10 = ("NVIDIA GB10", "sm_121", 119.7)
H100 = ("NVIDIA H100 80GB HBM3", "sm_90", 79.6)
H200 = ("NVIDIA H200", "sm_90", 139.8)
RTX_4090 = ("NVIDIA GeForce RTX 4090", "sm_89", 23.6)
NVML = (PRO_SERVER, PRO_WORKSTATION, GB10, H100, H200, RTX_4090)

# A requirement as the catalog, a task file or a person spells it -> the NVML names it runs on.
TABLE: list[tuple[str, set[tuple[str, str, float]]]] = [
    ("RTX Pro 6000", {PRO_SERVER, PRO_WORKSTATION}),
    ("rtx pro 6000", {PRO_SERVER, PRO_WORKSTATION}),
    ("RTX_PRO_6000_Blackwell", {PRO_SERVER, PRO_WORKSTATION}),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", {PRO_SERVER, PRO_WORKSTATION}),
    ("DGX Spark", {GB10}),
    ("GB10", {GB10}),
    ("nvidia gb10", {GB10}),
    ("H100", {H100}),
    ("NVIDIA H100 80GB HBM3", {H100}),
    ("H200", {H200}),
    ("RTX 4090", {RTX_4090}),
    ("GeForce RTX 4090", {RTX_4090}),
    ("4090", set()),  # a fragment names no product
    ("RTX", set()),
    ("NVIDIA", set()),
]


def caps_of(*cards: tuple[str, str, float]) -> Capabilities:
    gpus = tuple(gpu(n, a, gb, f"GPU-{i}", i) for i, (n, a, gb) in enumerate(cards))
    return Capabilities(host="h", gpus=gpus)


@pytest.mark.parametrize(("required", "runs_on"), TABLE, ids=[row[0] for row in TABLE])
def test_a_required_gpu_matches_exactly_the_nvml_names_of_its_product(
    required: str, runs_on: set[tuple[str, str, float]]
) -> None:
    matched = {
        card
        for card in NVML
        if pick_gpu(Requires(gpu=required), caps_of(card), GpuUsage()) is not None
    }
    assert matched == runs_on


@pytest.mark.parametrize(
    "nvml", ["NVIDIA H100 NVL", "NVIDIA H1000", "NVIDIA H100 PCIe 2", "NVIDIA RTX 40900"]
)
def test_h100_matches_neither_another_product_nor_a_longer_name(nvml: str) -> None:
    caps = caps_of((nvml, "sm_90", 94.0))
    assert pick_gpu(Requires(gpu="H100"), caps, GpuUsage()) is None
    assert unmet(Requires(gpu="H100"), caps, GpuUsage()) == "a 'H100' host"


def test_a_gpu_the_table_does_not_know_matches_only_its_own_spelling() -> None:
    caps = caps_of(("NVIDIA A100-SXM4-80GB", "sm_80", 80.0))
    assert pick_gpu(Requires(gpu="nvidia a100 sxm4 80gb"), caps, GpuUsage()) is not None
    assert pick_gpu(Requires(gpu="A100-SXM4-80GB"), caps, GpuUsage()) is not None  # no vendor
    assert pick_gpu(Requires(gpu="A100"), caps, GpuUsage()) is None
    assert unmet(Requires(gpu="A100", gpu_mem_gb=40), caps, GpuUsage()) == (
        "a 'A100' host with >= 40 GB (a GPU name facts/aliases.toml does not know)"
    )


def test_the_alias_table_is_read_once_not_per_row() -> None:
    routing.gpu_key.cache_clear()
    for _ in range(1000):
        gpu_key("NVIDIA GB10")
    assert routing.gpu_key.cache_info().misses == 1
    assert gpu_key("NVIDIA GB10") == gpu_key("DGX Spark") == "dgx-spark"


def add(store: Store, title: str, requires: Requires) -> str:
    return queue.add_task(store, NewTask(kind="other", title=title, requires=requires), T0).id


def test_claims_route_catalog_spellings_to_the_nvml_names_of_each_host(store: Store) -> None:
    hosts = {"spark": GB10, "pro-server": PRO_SERVER, "pro-ws": PRO_WORKSTATION,
             "h100": H100, "h200": H200, "4090": RTX_4090}  # fmt: skip
    for agent, (name, arch, gb) in hosts.items():
        register(store, agent, gpu(name, arch, gb, f"GPU-{agent}"), host=agent)
    spark = add(store, "spark", Requires(gpu="DGX Spark", gpu_mem_gb=100))
    pro = [add(store, f"pro{i}", Requires(gpu="RTX Pro 6000", exclusive=True)) for i in (1, 2)]
    h100 = add(store, "h100", Requires(gpu="H100", arch="sm_90"))
    h200 = add(store, "h200", Requires(gpu="H200"))
    rtx = add(store, "4090", Requires(gpu="RTX 4090", arch="sm_89", gpu_mem_gb=20))
    assert queue.claim(store, "h200", T0, LEASE).task.id == h200
    assert queue.claim(store, "h100", T0, LEASE).task.id == h100
    assert queue.claim(store, "4090", T0, LEASE).task.id == rtx
    assert queue.claim(store, "spark", T0, LEASE).task.id == spark
    claimed = {queue.claim(store, a, T0, LEASE).task.id for a in ("pro-server", "pro-ws")}
    assert claimed == set(pro)
    lease = queue.get_task(store, pro[0]).lease
    assert lease is not None and lease.gpu is not None and "RTX PRO 6000" in lease.gpu.gpu_name


def test_waiting_names_the_required_product_when_no_gpu_of_it_is_registered(
    store: Store,
) -> None:
    register(store, "h100-nvl", gpu("NVIDIA H100 NVL", "sm_90", 94.0, "GPU-N"), host="n")
    add(store, "needs h100", Requires(gpu="H100"))
    add(store, "needs spark", Requires(gpu="DGX Spark"))
    with pytest.raises(NothingClaimable) as err:
        queue.claim(store, "h100-nvl", T0, LEASE)
    assert str(err.value) == (
        "nothing claimable for h100-nvl: 1 task waits for a 'DGX Spark' host; "
        "1 task waits for a 'H100' host"
    )
