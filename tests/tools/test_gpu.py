"""The GPU inventory: the real NVML path where there is no driver, and capability detection over
a fake of our own narrow GpuSource interface (CI has no GPU)."""

from __future__ import annotations

from swarm.core.models import GpuInfo
from tools.capabilities import detect
from tools.gpu import GpuReading, Inventory, NvmlSource

SPARK = GpuInfo(
    index=0,
    name="NVIDIA GB10",
    uuid="GPU-aaaa",
    arch="sm_121",
    memory_total_gb=119.7,
    memory_free_gb=110.2,
    unified_memory=True,
)


class FakeSource:
    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def read(self) -> Inventory:
        return self.inventory


def test_no_driver_is_an_empty_inventory_that_says_why() -> None:
    inventory = NvmlSource().read()
    if inventory.gpus:  # this machine has a GPU: then it must say what it is
        assert all(
            g.arch and g.arch.startswith("sm_") and g.memory_total_gb > 0 for g in inventory.gpus
        )
    else:
        assert inventory.note


def test_detected_capabilities_carry_the_gpus_and_the_tools_on_path() -> None:
    caps = detect(
        host="spark-1",
        source=FakeSource(Inventory(readings=(GpuReading(gpu=SPARK),), driver_version="580")),
    )
    assert caps.host == "spark-1" and caps.gpus == (SPARK,) and caps.gpu_note is None
    assert "git" in caps.tools


def test_flags_override_detection_and_an_empty_inventory_keeps_its_reason() -> None:
    caps = detect(
        source=FakeSource(Inventory(note="no NVIDIA driver reachable through NVML")),
        tools=("nvcc",),
    )
    assert (
        caps.gpus == ()
        and caps.gpu_note == "no NVIDIA driver reachable through NVML"
        and caps.tools == ("nvcc",)
    )
