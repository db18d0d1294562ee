"""The lab tools the adapters (MCP server, CLI, worker) expose: one registry, owned by tools/.

A tool whose issue has not landed is simply absent: never a stub that pretends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.gpu import Inventory, NvmlSource


@dataclass(frozen=True)
class LabTool:
    name: str
    fn: Callable[..., Any]
    title: str
    read_only: bool
    idempotent: bool
    destructive: bool = False


def gpu_inventory() -> Inventory:
    """This host's NVIDIA GPUs through NVML (none: an empty list and a note why)."""
    return NvmlSource().read()


LAB_TOOLS: tuple[LabTool, ...] = (
    LabTool("gpu_inventory", gpu_inventory, "GPU inventory", read_only=True, idempotent=True),
)
