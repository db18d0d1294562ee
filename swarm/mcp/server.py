"""The MCP server: the queue and the lab tools for agents, over stdio or Streamable HTTP.

The only modules that import the `mcp` SDK are this one and swarm/mcp/http.py. Each tool is a
thin adapter: derive the caller from the connection, call one library function, return its
pydantic model, or raise a ToolError an agent can act on (`CODE: what happened; what to do`).
Every call reads through to the database (no task state cached in the process).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from swarm import SCHEMA_VERSION, __version__
from swarm.core import limits, paging
from swarm.core.errors import NotFound, NothingClaimable, SwarmError
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
from swarm.core.settings import Settings, repo_root
from swarm.db.search import SearchResults
from swarm.db.store import open_store
from swarm.facts.findings import NewFinding
from swarm.mcp.args import invalid_arguments, refuse
from swarm.queue import auth, queue, worker
from swarm.queue.auth import Principal, Role
from tools.registry import LAB_TOOLS

T = TypeVar("T")
INSTRUCTIONS = """swarm: the lab's shared task queue. You are {agent}; {source}.
Loop: claim_task -> work, calling heartbeat before lease.expires_at -> report_result(task_id,
epoch). Only the holder heartbeats, releases or reports a task, and only your own write calls
renew your leases. LEASE_LOST: drop that work, claim another. deploy, benchmark and
build_kernel return a job: poll get_task(job). Errors start with a CODE and say the next step.
The work_loop prompt has the rules in full."""
PAGE_MAX = 100
MCP_PATH = "/mcp"  # the SDK's Streamable HTTP path; everything else is the web page
PRINCIPAL = "swarm.principal"  # the ASGI scope key swarm/mcp/http.py puts the caller under
WHERE = {  # where a missing executable is found, for TOOL_MISSING's next step
    "nvcc": ("build_kernel", "a host with CUDA", "kernel"),
    "docker": ("deploy", "a host with Docker", "deploy"),
}


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


class JobStarted(Model):
    """A long action runs as a detached job on a task of its own; get_task(job) shows it."""

    schema_version: int = SCHEMA_VERSION
    job: str = Field(description="task id: get_task(job) shows state and result")
    state: Literal["running"] = "running"
    started_by: str


class TaskPage(Model):
    schema_version: int = SCHEMA_VERSION
    tasks: list[TaskSummary]
    next_cursor: str | None = Field(None, description="pass as cursor for the next page")


class TaskDetail(Model):
    schema_version: int = SCHEMA_VERSION
    task: Task
    results: list[Result]


class ConflictLine(Model):
    id: str
    reason: str
    explanation: str


class FactsReport(Model):
    schema_version: int = SCHEMA_VERSION
    facts_by_status: dict[str, int]
    citations_by_status: dict[str, int]
    open_conflicts: int
    conflicts: list[ConflictLine] = Field(
        description="the first open conflicts; `swarm triage` decides them"
    )
    bad_rows: list[str] = Field(
        default_factory=list, description="stored findings that no longer parse (skipped)"
    )


def _facts_report(outcome: Any, limit: int) -> FactsReport:
    from swarm.lab.pipeline import tally

    by_status, checks, open_ids = tally(outcome)
    lines = [
        ConflictLine(id=c.id, reason=c.reason, explanation=c.explanation)
        for c in outcome.facts.conflicts
        if c.id in open_ids
    ]
    return FactsReport(
        facts_by_status=by_status,
        citations_by_status=checks,
        open_conflicts=len(open_ids),
        conflicts=lines[:limit],
        bad_rows=[f"{b.id}: {b.error}" for b in outcome.bad_rows][:limit],
    )


class Lab:
    """What every tool call needs: the store (safe to share between the tool threads), the
    settings, and who the caller is when the connection does not say (stdio, in memory)."""

    def __init__(self, settings: Settings, agent: str | None = None, http: bool = False) -> None:
        self.settings = settings
        self.store = open_store(settings.db)
        self.repo = repo_root(Path.cwd())
        self.http = http
        named = agent or os.environ.get("SWARM_AGENT")
        given = "given to this server" if agent else "set by SWARM_AGENT"
        # One name for the server's whole life: made here, once, never from the per-request
        # session object (mcp 2.3 makes a fresh one per request: 30 calls were 27 agents).
        name = named or auth.stdio_name(auth.parent_program(), os.uname().nodename)
        self.local = Principal(name=self.call(lambda: auth.check_name(name)), role=Role.agent)
        self.source = given if named else "made when this server started"
        self._server_agent: str | None = None
        self.stop = threading.Event()
        self.jobs: list[threading.Thread] = []

    def call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except SwarmError as exc:
            raise ToolError(f"{exc.code()}: {exc}") from exc

    def require_repo(self) -> Path:
        """The lab repository, for the tools that work on its files."""
        if self.repo is None:
            raise ToolError("NO_REPO: the server was not started inside the lab's git repository")
        return self.repo

    def principal(self, ctx: Context) -> Principal:
        """The caller as the connection proves it: the bearer token's principal over HTTP, this
        server's one identity over stdio."""
        try:
            request = ctx.request_context.request
        except ValueError:  # no request: an in-process call
            request = None
        scope = getattr(request, "scope", None)
        found = scope.get(PRINCIPAL) if isinstance(scope, dict) else None
        if isinstance(found, Principal):
            return found
        if self.http:  # the middleware lets no request through without one; never guess
            raise ToolError("FORBIDDEN: this request carries no identity; present a bearer token")
        return self.local

    def caller(self, ctx: Context, named: str | None = None) -> str:
        """The calling agent's name. An `agent` argument may only restate it, except for the
        operator, who may act for any agent (the CLI's --server with the lab token)."""
        me = self.principal(ctx)
        if named is None or named == me.name:
            return me.name
        if me.role is Role.operator:
            return named
        how = "your token's agent" if self.http else f"this server's identity ({self.source})"
        raise ToolError(
            f"FORBIDDEN: you are {me.name} ({how}); agent={named!r} names another agent. "
            "Leave agent out: who you are comes from your connection"
        )

    def renew(self, agent: str) -> None:
        """A holder's own write calls renew its leases (agents forget heartbeats); reads never."""
        self.call(
            lambda: queue.renew_holder(self.store, agent, _now(), self.settings.lease_seconds)
        )

    def server_agent(self) -> str:
        """This server as the holder of the jobs it starts, registered with its host's tools."""
        if self._server_agent is None:
            from swarm.queue import agents
            from tools.capabilities import detect

            name = f"mcp-server@{os.uname().nodename}"
            self.call(lambda: agents.register(self.store, name, detect(), _now()))
            self._server_agent = name
        return self._server_agent

    def start_job(self, new: NewTask, tool: str, by: str) -> JobStarted:
        """Queue the action as a task, claim it as this server and run it as a detached job
        (swarm/queue/jobs.py, as `swarm work` does): the job outlives this server, and if the server
        goes first the next claim of the task adopts the job's result.

        Refuses with TOOL_MISSING, queueing nothing, when an executable it needs is not here.
        """
        for exe in new.requires.tools:
            if shutil.which(exe) is None:
                where, host, kind = WHERE.get(exe, (tool, f"a host with {exe}", new.kind))
                raise ToolError(
                    f"TOOL_MISSING: {exe} is not on this host's PATH; run {where} on {host}, "
                    f'or queue it with add_task(kind="{kind}")'
                )
        repo, agent = self.require_repo(), self.server_agent()
        task = self.call(lambda: queue.add_task(self.store, new, _now(), actor=by))
        claim = self.call(
            lambda: queue.claim(
                self.store, agent, _now(), self.settings.lease_seconds, task_id=task.id
            )
        )
        cfg = worker.WorkerConfig(
            agent=agent,
            kinds=(new.kind,),
            repo=repo,
            lab_dir=self.settings.lab_dir,
            db=self.settings.db,
            lease_seconds=self.settings.lease_seconds,
        )

        def run() -> None:
            try:
                worker.run_task(self.store, cfg, claim, self.stop, _log)
            except SwarmError as exc:  # the lease was ended meanwhile: the job log keeps the rest
                _log(f"job {task.id}: {exc.code()}: {exc}")

        thread = threading.Thread(target=run, name=f"job-{task.id}", daemon=True)
        self.jobs.append(thread)
        thread.start()
        return JobStarted(job=task.id, started_by=agent)

    def close(self, grace: float = 10.0) -> None:
        """Stop watching jobs: each is released with a note and keeps running; the next claim
        of its task adopts it (so nobody waits for the lease to expire)."""
        self.stop.set()
        deadline = time.monotonic() + grace
        for thread in self.jobs:
            thread.join(max(0.0, deadline - time.monotonic()))


def _log(line: str) -> None:
    print(f"swarm serve: {line}", file=sys.stderr, flush=True)


def _now() -> datetime:
    return datetime.now(UTC)


class SwarmServer(MCPServer):
    """MCPServer with arguments checked as an agent can act on (unknown names refused with the
    nearest valid one, type and range errors worded) and results' text as compact JSON."""

    full_schemas: dict[str, dict[str, Any]]  # before compaction: errors name every bound

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        tool = self._tool_manager.get_tool(name)
        schema = self.full_schemas.get(name, {}) if tool is not None else {}
        if tool is not None:
            unknown = refuse(schema, arguments)
            if unknown:
                raise ToolError(unknown)
        try:
            result = await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if tool is not None and isinstance(exc.__cause__, ValidationError):
                raise ToolError(invalid_arguments(schema, exc.__cause__)) from None
            # The SDK prefixes "Error executing tool NAME: "; an agent's error starts with its code.
            text = str(exc).removeprefix(f"Error executing tool {name}: ")
            raise ToolError(text) from exc.__cause__
        if isinstance(result, CallToolResult) and result.structured_content is not None:
            # The SDK sends the structured result again as indented text: the same data, compact.
            text = json.dumps(result.structured_content, separators=(",", ":"))
            result.content = [TextContent(type="text", text=text)]
        return result


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


def build_server(lab: Lab) -> SwarmServer:
    who = "your token's agent" if lab.http else f"{lab.local.name} ({lab.source})"
    server = SwarmServer(
        "swarm",
        version=__version__,
        instructions=INSTRUCTIONS.format(
            agent=who, source="pass no agent argument: your connection says who you are"
        ),
        log_level="WARNING",
    )
    _queue_tools(server, lab)
    _lab_tools(server, lab)
    from swarm.mcp.resources import add_resources

    add_resources(server, lab)
    _compact_schemas(server)
    return server


def _compact_schemas(server: SwarmServer) -> None:
    """Every agent reads tools/list on every session: say each thing once (swarm/mcp/schema.py)."""
    from swarm.mcp.schema import compact_input, compact_output, one_line

    server.full_schemas = {t.name: t.parameters for t in server._tool_manager.list_tools()}
    for tool in server._tool_manager.list_tools():
        tool.description = one_line(tool.description) or ""
        tool.parameters = compact_input(tool.parameters)
        meta = tool.fn_metadata
        if meta.output_schema is not None:
            meta.output_schema = compact_output(meta.output_schema)


def _queue_tools(server: MCPServer, lab: Lab) -> None:
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
        return Registered.of(lab.call(lambda: agents.register(lab.store, me, capabilities, _now())))

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
        lease = lab.call(lambda: queue.heartbeat(lab.store, task_id, epoch, _now(), secs, me))
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
                _now(),
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
        task = lab.call(lambda: queue.release(lab.store, task_id, epoch, _now(), note, me))
        return TaskSummary.of(task)

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
            after = paging.after(cursor, states, kinds, _now()) if cursor else None
            items = queue.list_tasks(lab.store, states, kinds, limit, after)
            more = (
                paging.cursor(items[-1].id, states, kinds, _now()) if len(items) == limit else None
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

    @server.tool(annotations=WRITE)
    def add_task(
        ctx: Context,
        kind: Literal["deploy", "benchmark", "kernel", "verify", "research", "other"],
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
            lambda: _new_task(
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
        task = lab.call(lambda: queue.add_task(lab.store, new, _now(), actor=me))
        lab.renew(me)
        return TaskSummary.of(task)


def _new_task(**fields: Any) -> NewTask:
    from swarm.core.errors import InvalidInput
    from swarm.core.models import validation_message

    try:
        return NewTask(**fields)
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc)) from exc


def _lab_tools(server: MCPServer, lab: Lab) -> None:
    @server.tool(annotations=READ)
    def search(
        text: Annotated[str, Field(min_length=1, max_length=500)],
        kind: list[Literal["finding", "task", "result", "log"]] | None = None,
        limit: Annotated[int, Field(ge=1, le=PAGE_MAX)] = 10,
    ) -> SearchResults:
        """Full-text search of findings, tasks, results and job logs (has anyone seen this?)."""
        from swarm.db.search import search as find

        return lab.call(lambda: find(lab.store, text, kind or (), limit))

    @server.tool(annotations=READ)
    def verify_facts(max_conflicts: Annotated[int, Field(ge=0, le=50)] = 10) -> FactsReport:
        """Check citations and reconcile findings (writes nothing): counts, open conflicts."""
        repo = lab.require_repo()
        from swarm.lab import pipeline as facts  # the facts pipeline loads only when asked for

        return lab.call(
            lambda: _facts_report(facts.run(lab.store, repo, write=False), max_conflicts)
        )

    @server.tool(annotations=WRITE)
    def build_kernel(
        ctx: Context,
        name: list[limits.Name] | None = None,
        arch: list[limits.Arch] | None = None,
        test: bool = False,
    ) -> JobStarted:
        """Job: build kernels/ with nvcc per arch (default all); test checks them on this GPU."""
        names, archs = tuple(name or ()), list(arch or ())
        spec = {"name": ",".join(names) or "all", "archs": archs, "test": test}
        new = NewTask(
            kind="kernel",
            title=f"build kernels {spec['name']}",
            spec=spec,
            requires=Requires(tools=("nvcc",)),
        )
        return lab.start_job(new, "build_kernel", lab.caller(ctx))

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=False,
        )
    )
    def deploy(
        ctx: Context,
        directory: Annotated[limits.Title, Field(description="repo folder with a deploy.toml")],
        action: Literal["up", "down", "dry-run"] = "up",
        gpu_total_gb: Annotated[float | None, Field(gt=0, le=100_000)] = None,
    ) -> JobStarted:
        """Job: start, stop or plan a model server from a deployment folder (Docker)."""
        repo = lab.require_repo()
        if not (repo / directory).resolve().is_relative_to(repo.resolve()):
            raise ToolError(f"INVALID_INPUT: directory {directory!r} is outside the repository")
        spec: dict[str, Any] = {"directory": directory, "action": action}
        if gpu_total_gb is not None:
            spec["gpu_total_gb"] = gpu_total_gb
        new = NewTask(
            kind="other",
            title=f"deploy {action} {directory}",
            spec=spec,
            requires=Requires(tools=("docker",)),
        )
        return lab.start_job(new, "deploy", lab.caller(ctx))

    @server.tool(annotations=WRITE)
    def benchmark(
        ctx: Context,
        endpoint: Annotated[limits.Title, Field(description="http://host:port")],
        model: Annotated[limits.Title | None, Field(description="default: /v1/models")] = None,
        concurrency: Annotated[
            list[Annotated[int, Field(ge=1, le=1024)]] | None, Field(min_length=1, max_length=16)
        ] = None,
        output_len: Annotated[int, Field(ge=1, le=32768)] = 128,
        input_len: Annotated[int, Field(ge=1, le=131072)] = 128,
        requests: Annotated[int | None, Field(ge=1, le=100_000)] = None,
        server_kind: Literal[
            "auto", "vllm", "sglang", "trt-llm", "transformers", "openai"
        ] = "auto",
        gpu: limits.Title | None = None,
        platform: limits.Title | None = None,
        quant: limits.Title | None = None,
        tp: Annotated[int | None, Field(ge=1, le=64)] = None,
    ) -> JobStarted:
        """Job: benchmark an OpenAI-compatible server per concurrency level (TTFT, TPOT, TPS);
        with gpu+platform its TPS become findings."""
        from tools.bench_client import Target

        try:
            Target.from_url(endpoint, "")
        except ValueError as exc:
            raise ToolError(f"INVALID_INPUT: endpoint {exc}") from exc
        spec = {"endpoint": endpoint, "served_model_name": model, "concurrency": concurrency or [1],
                "output_len": output_len, "input_len": input_len, "requests": requests,
                "server_kind": server_kind, "gpu": gpu, "platform": platform, "quant": quant,
                "tp": tp}  # fmt: skip
        spec = {k: v for k, v in spec.items() if v is not None}
        new = lab.call(
            lambda: _new_task(kind="benchmark", title=f"benchmark {model or endpoint}", spec=spec)
        )
        return lab.start_job(new, "benchmark", lab.caller(ctx))

    for tool in LAB_TOOLS:
        annotations = ToolAnnotations(
            read_only_hint=tool.read_only,
            idempotent_hint=tool.idempotent,
            destructive_hint=tool.destructive,
            open_world_hint=False,
        )
        server.add_tool(tool.fn, name=tool.name, title=tool.title, annotations=annotations)


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
        agents.register(lab.store, agent, caps, _now())
    note = None
    if caps.gpu_note == NEVER_REGISTERED:
        note = (
            f"{agent} never registered its host, so it gets no GPU work: call register_agent "
            "with your GPUs (or run `swarm agent register` on the host)"
        )
    try:
        claim = queue.claim(lab.store, agent, _now(), lease, kinds)
    except NothingClaimable as exc:
        return ClaimResponse(claimed=False, agent=agent, reason=str(exc), note=note)
    task = ClaimedTask.of(claim.task)
    return ClaimResponse(claimed=True, agent=agent, task=task, lease=claim.lease, note=note)


# ---------------------------------------------------------------- transports


def _watch_parent(lab: Lab, interval: float = 1.0) -> None:
    """Exit when the parent dies: stdin may be held open by another process (python-sdk#526)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                lab.close()
                os._exit(0)

    threading.Thread(target=watch, name="ppid-watchdog", daemon=True).start()


def serve_stdio(settings: Settings) -> None:
    lab = Lab(settings)
    _watch_parent(lab)
    try:
        build_server(lab).run("stdio")
    finally:
        lab.close()
