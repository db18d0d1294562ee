"""Pydantic models: the one schema for DB rows, CLI --json, MCP I/O and catalog files."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from swarm import SCHEMA_VERSION
from swarm.core.limits import (
    Arch,
    Attempts,
    FreeGigaBytes,
    GigaBytes,
    Int32,
    Name,
    Note,
    Payload,
    Spec,
    TaskTitle,
    Title,
    describe,
    is_stored,
    normalize_arch,
    refuse_bad_values,
)

__all__ = ["normalize_arch"]  # re-exported: raises ValueError naming the accepted forms


def iso(moment: datetime) -> str:
    """Fixed-width UTC ISO-8601, so that text comparison in SQL orders like time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def validation_message(exc: ValidationError) -> str:
    """'deployment.0.colour is not a known field (got …); …' — the field named, no URL."""
    return describe(exc)


def _untitled(schema: dict[str, Any]) -> None:
    """Drop the title pydantic gives each property (its name, title-cased): it tells a reader
    nothing the key does not, and agents pay tokens for every byte of a tool's schema."""
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)


class Model(BaseModel):
    # defer_build: a model's validator is built on first use, so a CLI call pays only for the
    # models it touches (measured: most of `swarm claim`'s import time otherwise).
    model_config = ConfigDict(
        extra="forbid", frozen=True, defer_build=True, json_schema_extra=_untitled
    )


class InputModel(Model):
    """A model built from what a caller sent: no NUL byte, unpaired surrogate, NaN/inf or
    integer beyond BIGINT anywhere in it (PostgreSQL would refuse what SQLite takes)."""

    @model_validator(mode="before")
    @classmethod
    def _no_bad_values(cls, data: Any, info: ValidationInfo) -> Any:
        return data if is_stored(info) else refuse_bad_values(data)


def build_all_models() -> int:
    """Build every deferred model now (a long-running server: its first calls should not each
    pay for, or race to do, the building). Returns how many were built."""
    pending = list(Model.__subclasses__())
    built = 0
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        model.model_rebuild(force=True)
        built += 1
    return built


class TaskState(StrEnum):
    pending = "pending"
    claimed = "claimed"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_STATES = frozenset({TaskState.done, TaskState.failed, TaskState.cancelled})


class Requires(InputModel):
    """Hard constraints a claiming agent must meet."""

    arch: Arch | None = Field(None, description="GPU architecture, e.g. sm_120")
    gpu: Title | None = Field(None, description="GPU name, e.g. 'RTX Pro 6000' (case-insensitive)")
    gpu_mem_gb: GigaBytes | None = Field(None, description="GPU memory share to lease, GB")
    exclusive: bool = Field(False, description="lease the whole GPU (no co-tenant)")
    host: Name | None = None
    tools: tuple[Name, ...] = Field((), description="executables needed, e.g. docker, nvcc")

    @property
    def needs_gpu(self) -> bool:
        return bool(self.arch or self.gpu or self.gpu_mem_gb or self.exclusive)


class GpuInfo(InputModel):
    index: int = Field(ge=0, le=1024)
    name: Title
    uuid: Title
    arch: Arch | None = None
    memory_total_gb: GigaBytes
    memory_free_gb: FreeGigaBytes | None = None
    unified_memory: bool = False


class Capabilities(InputModel):
    host: Name
    gpus: tuple[GpuInfo, ...] = ()
    tools: tuple[Name, ...] = ()
    gpu_note: Note | None = Field(None, description="why no GPUs were found, when none were")
    driver: Name | None = Field(None, description="the GPU driver version, e.g. 580.95.05")
    engines: dict[Name, Name] = Field(
        default_factory=dict,
        # a newer engine than a fact's runs used makes that fact stale (swarm/lab/replication.py)
        description="serving engines here and their versions, e.g. {vllm: 0.11.0}",
    )


class Agent(Model):
    schema_version: int = SCHEMA_VERSION
    id: str
    capabilities: Capabilities
    registered_at: str
    last_seen: str


class GpuLease(Model):
    host: str
    gpu_uuid: str
    gpu_name: str
    gb: float
    exclusive: bool


class Lease(Model):
    holder: str
    epoch: int = Field(description="fencing token: present it on heartbeat, release and report")
    expires_at: str
    claimed_at: str
    gpu: GpuLease | None = None


class Task(Model):
    schema_version: int = SCHEMA_VERSION
    id: str
    kind: str
    title: str
    # checked again on the way out: a claim whose spec could not be rendered is never made
    spec: Spec = {}
    state: TaskState
    blocked_by: tuple[str, ...] = Field((), description="unfinished dependencies (derived)")
    priority: int = 0
    # a factory, not an instance: an instance default builds Requires' validator at import
    requires: Requires = Field(default_factory=Requires)
    depends_on: tuple[str, ...] = ()
    attempts: int = 0
    max_attempts: int = 3
    dedupe_key: str | None = None
    epoch: int = 0
    lease: Lease | None = None
    note: str | None = None
    created_at: str
    updated_at: str


class TaskSummary(Model):
    """The few fields a task list shows (MCP list_tasks, and `swarm ls` through a server)."""

    id: str
    kind: str
    state: TaskState
    title: str
    priority: int
    holder: str | None = None
    blocked: bool = False

    @classmethod
    def of(cls, task: Task) -> TaskSummary:
        return cls(
            id=task.id,
            kind=task.kind,
            state=task.state,
            title=task.title,
            priority=task.priority,
            holder=task.lease.holder if task.lease else None,
            blocked=bool(task.blocked_by),
        )


class Event(Model):
    seq: int
    task_id: str
    at: str
    actor: str
    action: str
    epoch: int | None = None
    detail: str | None = None


class Result(Model):
    schema_version: int = SCHEMA_VERSION
    id: str
    task_id: str
    epoch: int
    agent: str
    status: Literal["done", "failed"]
    payload: Payload = {}
    note: Note | None = None
    idempotency_key: str
    created_at: str


class Claim(Model):
    """What claim returns: the task and the lease to present on every later call."""

    schema_version: int = SCHEMA_VERSION
    task: Task
    lease: Lease


class Reclaimed(Model):
    task_id: str
    holder: str
    epoch: int
    new_state: TaskState


class NewTask(InputModel):
    """Input of add: everything a caller may set; the store sets the rest."""

    kind: Name
    title: TaskTitle
    spec: Spec = {}
    priority: Int32 = 0
    requires: Requires = Field(default_factory=Requires)
    depends_on: tuple[Name, ...] = ()
    max_attempts: Attempts = 3
    dedupe_key: Title | None = None
    id: str | None = Field(None, pattern=r"^[a-z][a-z0-9-]{2,63}$")
