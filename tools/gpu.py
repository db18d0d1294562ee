"""Read-only GPU inventory through NVML (nvidia-ml-py), with a narrow interface tests can fake.

No driver, no library or no GPU is not an error: the inventory is empty and says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from pydantic import Field

from swarm.core.models import GpuInfo, Model

GIB = 1024**3


class GpuProcess(Model):
    pid: int
    used_gb: float | None


class GpuReading(Model):
    gpu: GpuInfo
    processes: tuple[GpuProcess, ...] = ()


class Inventory(Model):
    readings: tuple[GpuReading, ...] = ()
    driver_version: str | None = None
    note: str | None = Field(None, description="why the inventory is empty, when it is")

    @property
    def gpus(self) -> tuple[GpuInfo, ...]:
        return tuple(r.gpu for r in self.readings)


class GpuSource(Protocol):
    """What swarm needs from a GPU reader; NVML in production, a fake in CI."""

    def read(self) -> Inventory: ...


def _system_memory_gb() -> tuple[float, float | None]:
    """MemTotal and MemAvailable, for unified-memory parts (GB10) whose NVML memory query fails."""
    values: dict[str, float] = {}
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        name, _, rest = line.partition(":")
        if name in ("MemTotal", "MemAvailable"):
            values[name] = int(rest.split()[0]) * 1024 / GIB
    return values.get("MemTotal", 0.0), values.get("MemAvailable")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlSource:
    """The real reader. pynvml is imported here only, so CLI start-up never pays for it."""

    def read(self) -> Inventory:
        try:
            import pynvml
        except ImportError:
            return Inventory(note="nvidia-ml-py is not installed")
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            return Inventory(note=f"no NVIDIA driver reachable through NVML ({exc})")
        try:
            driver = _text(pynvml.nvmlSystemGetDriverVersion())
            count = pynvml.nvmlDeviceGetCount()
            readings = tuple(self._device(pynvml, i) for i in range(count))
        finally:
            pynvml.nvmlShutdown()
        return Inventory(
            readings=readings,
            driver_version=driver,
            note=None if readings else "NVML found no GPUs",
        )

    @staticmethod
    def _device(pynvml: Any, index: int) -> GpuReading:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        unified = False
        try:
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            total, free = memory.total / GIB, memory.free / GIB
        except pynvml.NVMLError_NotSupported:
            # GB10 (DGX Spark) has unified memory; NVML answers NOT_SUPPORTED for it.
            total, free = _system_memory_gb()
            unified = True
        try:
            procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except pynvml.NVMLError:
            procs = []
        return GpuReading(
            gpu=GpuInfo(
                index=index,
                name=_text(pynvml.nvmlDeviceGetName(handle)),
                uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                arch=f"sm_{major}{minor}",
                memory_total_gb=round(total, 2),
                memory_free_gb=None if free is None else round(free, 2),
                unified_memory=unified,
            ),
            processes=tuple(
                GpuProcess(
                    pid=p.pid,
                    used_gb=None if p.usedGpuMemory is None else round(p.usedGpuMemory / GIB, 3),
                )
                for p in procs
            ),
        )
