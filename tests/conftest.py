from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from swarm import agents
from swarm.models import Capabilities, GpuInfo
from swarm.store import SqliteStore

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "lab.db")
    yield s
    s.close()


def gpu(
    name: str = "RTX Pro 6000",
    arch: str = "sm_120",
    gb: float = 96.0,
    uuid: str = "GPU-0",
    index: int = 0,
) -> GpuInfo:
    return GpuInfo(index=index, name=name, uuid=uuid, arch=arch, memory_total_gb=gb)


def register(
    store: SqliteStore,
    agent: str,
    *gpus: GpuInfo,
    host: str = "pro6000",
    tools: tuple[str, ...] = (),
) -> None:
    agents.register(store, agent, Capabilities(host=host, gpus=gpus, tools=tools), T0)


async def finished_job(client: Any, job: str, seconds: float = 60.0) -> dict[str, Any]:
    """Poll an MCP job's task (get_task) until it is no longer claimed; its detail."""
    import anyio

    with anyio.fail_after(seconds):
        while True:
            detail: dict[str, Any] = (
                await client.call_tool("get_task", {"task_id": job})
            ).structured_content
            if detail["task"]["state"] != "claimed":
                return detail
            await anyio.sleep(0.05)


def free_port() -> int:
    """A loopback port free right now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
