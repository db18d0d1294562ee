"""The queue's MCP tools, one function per family: claiming (claim_task, register_agent),
leases (heartbeat, report_result, release_task), reading (list_tasks, get_task), adding (add_task).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from swarm import SCHEMA_VERSION
from swarm.core import limits, paging
from swarm.core.errors import NotFound, NothingClaimable
from swarm.core.kinds import TaskKind
from swarm.core.models import (
    Agent,
    Capabilities,
    Lease,
    Model,
    NewTask,
    Requires,
    Result,
    Task,
    TaskState,
    TaskSummary,
)
from swarm.facts.findings import NewFinding
from swarm.mcp.lab import Lab, now
from swarm.queue import queue

AgentArg = limits.Name | None  # may only restate the caller (the instructions say so)
TaskId = limits.Name
Epoch = limits.Epoch
Note = limits.Note | None
LeaseSeconds = limits.LeaseSeconds | None
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
IDEMPOTENT_WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)  # the rest: for writes
PAGE_MAX = 100


class ClaimedTask(Model):
    """What a claimer needs of its task (get_task has the rest: dates, blockers, results)."""

    id: str
    kind: str
    title: str
    spec: dict[str, Any]
    requires: Requires
    depends_on: tuple[str, ...] = ()
    attempts: int
    max_attempts: int
    note: str | None = None

    @classmethod
    def of(cls, task: Task) -> ClaimedTask:
        fields = task.model_dump(include=set(cls.model_fields) - {"requires"})
        return cls(**fields, requires=task.requires)


class ClaimResponse(Model):
    """claim_task's answer: a task and its lease, or why nothing is claimable now."""

    schema_version: int = SCHEMA_VERSION
    claimed: bool
    agent: str = Field(description="you, as this server knows you")
    task: ClaimedTask | None = None
    lease: Lease | None = None
    reason: str | None = None
    note: str | None = None


class Registered(Model):
    """register_agent's answer: who was recorded and when (the capabilities are what was sent)."""

    schema_version: int = SCHEMA_VERSION
    id: str
    gpus: int = Field(description="how many GPUs were recorded")
    registered_at: str
    last_seen: str

    @classmethod
    def of(cls, agent: Agent) -> Registered:
        return cls(id=agent.id, gpus=len(agent.capabilities.gpus),
                   registered_at=agent.registered_at, last_seen=agent.last_seen)  # fmt: skip


class TaskPage(Model):
    schema_version: int = SCHEMA_VERSION
    tasks: list[TaskSummary]
    next_cursor: str | None = Field(None, description="pass as cursor for the next page")


class TaskDetail(Model):
    schema_version: int = SCHEMA_VERSION
    task: Task
    results: list[Result]


def claim_tools(server: MCPServer, lab: Lab) -> None:
    """claim_task and register_agent: how an agent gets work."""

    @server.tool(annotations=WRITE)
    def claim_task(
        ctx: Context,
        kinds: list[limits.Name] | None = None,
        lease_seconds: LeaseSeconds = None,
        agent: AgentArg = None,
    ) -> ClaimResponse:
        """Claim your best ready task with its lease (else claimed=false and why)."""
        me = lab.caller(ctx, agent)
        lease = lease_seconds or lab.settings.lease_seconds
        return lab.call(lambda: _claim(lab, me, lease, kinds))

    @server.tool(annotations=IDEMPOTENT_WRITE)
    def register_agent(
        ctx: Context, capabilities: Capabilities, agent: AgentArg = None
    ) -> Registered:
        """Record your host's GPUs and tools so claims route GPU work to you (replaces)."""
        from swarm.queue import agents

        me = lab.caller(ctx, agent)
        return Registered.of(lab.call(lambda: agents.register(lab.store, me, capabilities, now())))


def lease_tools(server: MCPServer, lab: Lab) -> None:
    """heartbeat, report_result, release_task: only the lease holder's."""

    @server.tool(annotations=IDEMPOTENT_WRITE)
    def heartbeat(
        ctx: Context,
        task_id: TaskId,
        epoch: Epoch,
        lease_seconds: LeaseSeconds = None,
        agent: AgentArg = None,
    ) -> Lease:
        """Extend your lease on a task you hold."""
        me = lab.caller(ctx, agent)
        secs = lease_seconds or lab.settings.lease_seconds
        lease = lab.call(lambda: queue.heartbeat(lab.store, task_id, epoch, now(), secs, me))
        lab.renew(me)
        return lease

    @server.tool(annotations=IDEMPOTENT_WRITE)
    def report_result(
        ctx: Context,
        task_id: TaskId,
        epoch: Epoch,
        status: Literal["done", "failed"],
        result: limits.Payload | None = None,
        note: Note = None,
        idempotency_key: limits.Title | None = None,
        findings: list[NewFinding] | None = None,
        agent: AgentArg = None,
    ) -> Result:
        """Finish a task you hold with its result and findings; evidence for this run:
        {"kind":"run","locator":"this","metric":KEY}. A retry is one result."""
        me = lab.caller(ctx, agent)
        out = lab.call(
            lambda: queue.report(
                lab.store,
                task_id,
                epoch,
                status,
                now(),
                result or {},
                note,
                idempotency_key,
                findings or (),
                agent=me,
            )
        )
        lab.renew(me)
        return out

    @server.tool(annotations=WRITE)
    def release_task(
        ctx: Context, task_id: TaskId, epoch: Epoch, note: Note = None, agent: AgentArg = None
    ) -> TaskSummary:
        """Give a task you hold back to the queue (no attempt spent)."""
        me = lab.caller(ctx, agent)
        task = lab.call(lambda: queue.release(lab.store, task_id, epoch, now(), note, me))
        return TaskSummary.of(task)


def task_tools(server: MCPServer, lab: Lab) -> None:
    """list_tasks and get_task: the queue read, a page at a time."""

    @server.tool(annotations=READ)
    def list_tasks(
        state: list[TaskState] | None = None,
        kind: list[limits.Name] | None = None,
        limit: Annotated[int, Field(ge=1, le=PAGE_MAX)] = 20,
        cursor: limits.Title | None = None,
    ) -> TaskPage:
        """Tasks, oldest first, a page at a time."""
        states, kinds = [s.value for s in state or ()], list(kind or ())

        def page() -> TaskPage:
            after = paging.after(cursor, states, kinds, now()) if cursor else None
            items = queue.list_tasks(lab.store, states, kinds, limit, after)
            more = (
                paging.cursor(items[-1].id, states, kinds, now()) if len(items) == limit else None
            )
            return TaskPage(tasks=[TaskSummary.of(t) for t in items], next_cursor=more)

        return lab.call(page)

    @server.tool(annotations=READ)
    def get_task(task_id: TaskId) -> TaskDetail:
        """One task in full, with its results."""
        return lab.call(
            lambda: TaskDetail(
                task=queue.get_task(lab.store, task_id),
                results=queue.task_results(lab.store, task_id),
            )
        )


def add_tools(server: MCPServer, lab: Lab) -> None:
    """add_task: queue work for the lab."""

    @server.tool(annotations=WRITE)
    def add_task(
        ctx: Context,
        kind: TaskKind,
        title: limits.TaskTitle,
        spec: limits.Spec | None = None,
        priority: limits.Int32 = 0,
        requires: Requires | None = None,
        depends_on: list[TaskId] | None = None,
        max_attempts: limits.Attempts = 3,
        dedupe_key: limits.Title | None = None,
        agent: AgentArg = None,
    ) -> TaskSummary:
        """Queue a task (spec checked by kind; a duplicate names the task that has it)."""
        me = lab.caller(ctx, agent)
        new = lab.call(
            lambda: new_task(
                kind=kind,
                title=title,
                spec=spec or {},
                priority=priority,
                requires=requires or Requires(),
                depends_on=tuple(depends_on or ()),
                max_attempts=max_attempts,
                dedupe_key=dedupe_key,
            )
        )
        task = lab.call(lambda: queue.add_task(lab.store, new, now(), actor=me))
        lab.renew(me)
        return TaskSummary.of(task)


def new_task(**fields: Any) -> NewTask:
    from swarm.core.errors import InvalidInput
    from swarm.core.models import validation_message

    try:
        return NewTask(**fields)
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc)) from exc


NEVER_REGISTERED = "never registered: no GPUs known"


def _claim(lab: Lab, agent: str, lease: float, kinds: list[str] | None) -> ClaimResponse:
    """Claim as agent. An identity that never registered is recorded with no GPUs, and every
    claim it makes says so until it registers."""
    from swarm.queue import agents

    lab.renew(agent)  # first: the new lease keeps the length asked for
    try:
        caps = agents.get_agent(lab.store, agent).capabilities
    except NotFound:
        caps = Capabilities(host="unknown", gpu_note=NEVER_REGISTERED)
        agents.register(lab.store, agent, caps, now())
    note = None
    if caps.gpu_note == NEVER_REGISTERED:
        note = (
            f"{agent} never registered its host, so it gets no GPU work: call register_agent "
            "with your GPUs (or run `swarm agent register` on the host)"
        )
    try:
        claim = queue.claim(lab.store, agent, now(), lease, kinds)
    except NothingClaimable as exc:
        return ClaimResponse(claimed=False, agent=agent, reason=str(exc), note=note)
    task = ClaimedTask.of(claim.task)
    return ClaimResponse(claimed=True, agent=agent, task=task, lease=claim.lease, note=note)
