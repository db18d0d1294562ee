"""What this host can run: hostname, GPUs (NVML) and the tools on PATH."""

from __future__ import annotations

import shutil
import socket

from swarm.core.models import Capabilities, GpuInfo
from tools.gpu import GpuSource, NvmlSource

DETECTED_TOOLS = ("docker", "nvcc", "git")


def detect(
    host: str | None = None,
    gpus: tuple[GpuInfo, ...] | None = None,
    tools: tuple[str, ...] | None = None,
    source: GpuSource | None = None,
) -> Capabilities:
    """Detected capabilities, each part overridable (flags win over detection)."""
    note = None
    if gpus is None:
        inventory = (source or NvmlSource()).read()
        gpus, note = inventory.gpus, inventory.note
    if tools is None:
        tools = tuple(t for t in DETECTED_TOOLS if shutil.which(t))
    return Capabilities(host=host or socket.gethostname(), gpus=gpus, tools=tools, gpu_note=note)
