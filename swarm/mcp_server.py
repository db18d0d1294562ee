"""The MCP server: the queue and the lab tools for agents, over stdio or Streamable HTTP.

The only module that imports the `mcp` SDK. Each tool is a thin adapter: resolve the agent, call
one library function, return its pydantic model, or raise a ToolError an agent can act on.
Every call reads through to the database (no task state cached in the process).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from swarm import SCHEMA_VERSION, __version__, queue
from swarm.atomic import atomic_open
from swarm.errors import NothingClaimable, SwarmError
from swarm.findings import NewFinding
from swarm.models import (
    Agent,
    Capabilities,
    Claim,
    Lease,
    Model,
    NewTask,
    Requires,
    Result,
    Task,
    TaskState,
    TaskSummary,
    build_all_models,
)
from swarm.search import SearchResults
from swarm.settings import Settings, repo_root
from swarm.store import open_store
from tools.registry import LAB_TOOLS

T = TypeVar("T")
INSTRUCTIONS = """swarm: the lab's shared task queue. Loop: claim_task -> do the work, calling
heartbeat before the lease expires (any call of yours also renews your leases) -> report_result
with the task_id and epoch claim_task returned. A LEASE_LOST error means another agent owns the
task now: drop that work and claim a new task."""
PAGE_MAX = 100
MCP_PATH = "/mcp"  # the SDK's Streamable HTTP path; everything else is the web page


class ClaimResponse(Model):
    """claim_task's answer: a task and its lease, or why nothing is claimable now."""

    schema_version: int = SCHEMA_VERSION
    claimed: bool
    task: Task | None = None
    lease: Lease | None = None
    reason: str | None = None


class JobStarted(Model):
    """A long action runs as a task of its own; poll get_task(job) for its state and result."""

    schema_version: int = SCHEMA_VERSION
    job: str = Field(
        description="the task id: get_task(job) shows progress and, when done, the result"
    )
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
    from swarm.facts import tally

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
    """What every tool call needs: the store (safe to share between the tool threads) and the
    settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = open_store(settings.db)
        self.default_agent = os.environ.get("SWARM_AGENT")
        self.repo = repo_root(Path.cwd())
        self._server_agent: str | None = None

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

    def agent(self, ctx: Context, explicit: str | None) -> str:
        """The calling agent: the argument, else SWARM_AGENT, else the client's name + session."""
        if explicit:
            return explicit
        if self.default_agent:
            return self.default_agent
        params = getattr(ctx.session, "client_params", None)
        client = params.client_info.name if params is not None else "mcp"
        return f"{client}-{hashlib.sha256(str(id(ctx.session)).encode()).hexdigest()[:6]}"

    def start_job(
        self,
        new: NewTask,
        work: Callable[[], tuple[Literal["done", "failed"], dict[str, Any]]],
        findings: Callable[[Task, dict[str, Any]], Sequence[NewFinding]] | None = None,
    ) -> JobStarted:
        """Queue the action as a task, claim it as this server, run it on a thread, report it.

        The caller gets the task id at once; the thread heartbeats the lease while it works, so a
        build that outlives the call is never mistaken for a dead one.
        """
        agent = self.server_agent()
        task = self.call(lambda: queue.add_task(self.store, new, _now(), actor=agent))
        claim = self.call(
            lambda: queue.claim(
                self.store, agent, _now(), self.settings.lease_seconds, task_id=task.id
            )
        )
        epoch = claim.lease.epoch
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.settings.lease_seconds / 3):
                self.call(
                    lambda: queue.heartbeat(
                        self.store, task.id, epoch, _now(), self.settings.lease_seconds
                    )
                )

        def run() -> None:
            threading.Thread(target=beat, name=f"heartbeat-{task.id}", daemon=True).start()
            try:
                status, payload = work()
                note = None
            except Exception as exc:  # the job's failure is the task's result, not a server crash
                status, payload, note = (
                    "failed",
                    {"error": f"{type(exc).__name__}: {exc}"},
                    str(exc)[:500],
                )
            finally:
                done.set()
            found = findings(task, payload) if findings is not None and status == "done" else ()
            self.call(
                lambda: queue.report(
                    self.store, task.id, epoch, status, _now(), payload, note, findings=found
                )
            )

        threading.Thread(target=run, name=f"job-{task.id}", daemon=True).start()
        return JobStarted(job=task.id, started_by=agent)

    def server_agent(self) -> str:
        """This server as an agent, registered once with what its host can run."""
        if self._server_agent is None:
            from swarm import agents
            from tools.capabilities import detect

            name = f"mcp-server@{os.uname().nodename}"
            self.call(lambda: agents.register(self.store, name, detect(), _now()))
            self._server_agent = name
        return self._server_agent

    def renew(self, agent: str) -> None:
        """Any call of a lease holder renews its leases (agents forget heartbeats)."""
        self.call(
            lambda: queue.renew_holder(self.store, agent, _now(), self.settings.lease_seconds)
        )


def _now() -> datetime:
    return datetime.now(UTC)


AgentArg = Annotated[
    str | None, Field(description="your agent name; default SWARM_AGENT or this client's session")
]
TaskId = Annotated[
    str, Field(min_length=3, max_length=64, description="task id, e.g. deploy-1a2b3c")
]
Epoch = Annotated[int, Field(ge=1, description="the lease epoch claim_task returned")]
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
IDEMPOTENT_WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def build_server(lab: Lab) -> MCPServer:
    server = MCPServer("swarm", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(annotations=WRITE)
    def claim_task(
        ctx: Context,
        kinds: list[str] | None = None,
        agent: AgentArg = None,
        lease_seconds: Annotated[float | None, Field(ge=30, le=86_400)] = None,
    ) -> ClaimResponse:
        """Claim the best ready task you can run (priority, then age), with its GPU lease.

        Returns the task and the lease (present task_id + epoch on heartbeat/report/release), or
        claimed=false and the reason (e.g. '4 tasks wait for an sm_121 host'). An unregistered
        agent is registered with no GPUs: run `swarm agent register` on a GPU host first.
        """
        who = lab.agent(ctx, agent)
        lease = lease_seconds or lab.settings.lease_seconds

        def do() -> ClaimResponse:
            try:
                claim = _claim_registering(lab, who, lease, kinds)
            except NothingClaimable as exc:
                return ClaimResponse(claimed=False, reason=str(exc))
            return ClaimResponse(claimed=True, task=claim.task, lease=claim.lease)

        return lab.call(do)

    @server.tool(annotations=IDEMPOTENT_WRITE)
    def register_agent(ctx: Context, capabilities: Capabilities, agent: AgentArg = None) -> Agent:
        """Record what your host has (host name, GPUs with arch and memory, tools) so claims route
        GPU work to you; re-registering replaces it. `swarm agent register --server` sends this."""
        from swarm import agents

        who = lab.agent(ctx, agent)
        return lab.call(lambda: agents.register(lab.store, who, capabilities, _now()))

    @server.tool(annotations=IDEMPOTENT_WRITE)
    def heartbeat(
        task_id: TaskId,
        epoch: Epoch,
        lease_seconds: Annotated[float | None, Field(ge=30, le=86_400)] = None,
    ) -> Lease:
        """Extend your lease on a claimed task. LEASE_LOST: another agent owns it now."""
        return lab.call(
            lambda: queue.heartbeat(
                lab.store, task_id, epoch, _now(), lease_seconds or lab.settings.lease_seconds
            )
        )

    @server.tool(annotations=IDEMPOTENT_WRITE)
    def report_result(
        task_id: TaskId,
        epoch: Epoch,
        status: Literal["done", "failed"],
        result: dict[str, Any] | None = None,
        note: Annotated[str | None, Field(max_length=2000)] = None,
        idempotency_key: str | None = None,
        findings: list[NewFinding] | None = None,
    ) -> Result:
        """Report the result of your claimed task and finish it, with the findings it produced
        (subject, predicate, scope, typed value, statement, evidence: cite this run as
        {"kind": "run", "locator": <result id>, "metric": <payload key>} in a later finding).
        Retrying the same report is safe (one result); a different report for the same attempt
        is refused (CONFLICT)."""
        return lab.call(
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
            )
        )

    @server.tool(annotations=WRITE)
    def release_task(task_id: TaskId, epoch: Epoch, note: str | None = None) -> TaskSummary:
        """Give a claimed task back to the queue (no attempt spent), e.g. when it needs other hardware."""
        return lab.call(
            lambda: TaskSummary.of(queue.release(lab.store, task_id, epoch, _now(), note))
        )

    @server.tool(annotations=READ)
    def list_tasks(
        ctx: Context,
        state: list[TaskState] | None = None,
        kind: list[str] | None = None,
        limit: Annotated[int, Field(ge=1, le=PAGE_MAX)] = 20,
        cursor: str | None = None,
        agent: AgentArg = None,
    ) -> TaskPage:
        """List tasks (id, kind, state, title, holder), oldest first; page with cursor."""
        lab.renew(lab.agent(ctx, agent))

        def page() -> TaskPage:
            items = queue.list_tasks(
                lab.store, [s.value for s in state or ()], kind or (), limit, cursor
            )
            more = items[-1].id if len(items) == limit else None
            return TaskPage(tasks=[TaskSummary.of(t) for t in items], next_cursor=more)

        return lab.call(page)

    @server.tool(annotations=READ)
    def get_task(task_id: TaskId) -> TaskDetail:
        """One task in full (spec, requirements, lease, dependencies) with its results."""
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
        title: Annotated[str, Field(min_length=1, max_length=200)],
        spec: dict[str, Any] | None = None,
        priority: int = 0,
        requires: Requires | None = None,
        depends_on: list[str] | None = None,
        max_attempts: Annotated[int, Field(ge=1, le=20)] = 3,
        dedupe_key: str | None = None,
        agent: AgentArg = None,
    ) -> TaskSummary:
        """Queue a task. The spec is validated by its kind; the same deployment queued twice (under
        any spelling) is refused with DUPLICATE naming the existing task."""
        new = NewTask(
            kind=kind,
            title=title,
            spec=spec or {},
            priority=priority,
            requires=requires or Requires(),
            depends_on=tuple(depends_on or ()),
            max_attempts=max_attempts,
            dedupe_key=dedupe_key,
        )
        who = lab.agent(ctx, agent)
        return lab.call(lambda: TaskSummary.of(queue.add_task(lab.store, new, _now(), actor=who)))

    @server.tool(annotations=READ)
    def search(
        text: Annotated[str, Field(min_length=1, max_length=500)],
        kind: list[Literal["finding", "task", "result", "log"]] | None = None,
        limit: Annotated[int, Field(ge=1, le=PAGE_MAX)] = 10,
    ) -> SearchResults:
        """Full-text search of findings, tasks, results and job logs (has anyone seen this?)."""
        from swarm.search import search as find

        return lab.call(lambda: find(lab.store, text, kind or (), limit))

    @server.tool(annotations=READ)
    def verify_facts(max_conflicts: Annotated[int, Field(ge=0, le=50)] = 10) -> FactsReport:
        """Check every citation offline and reconcile the lab's findings (nothing is written):
        counts of facts by status, citations that are not ok, and the open conflicts with why."""
        repo = lab.require_repo()
        from swarm import facts  # the facts pipeline loads only when asked for

        return lab.call(
            lambda: _facts_report(facts.run(lab.store, repo, write=False), max_conflicts)
        )

    @server.tool(annotations=WRITE)
    def build_kernel(
        name: list[str] | None = None,
        arch: list[str] | None = None,
        test: bool = False,
    ) -> JobStarted:
        """Build CUDA kernels from kernels/manifest.toml with nvcc, for each target (default all),
        and with test=true check them against the numpy reference on this host's GPU. Returns a
        job id at once; get_task(job) shows the result: per kernel and target the registers,
        spills and shared memory, the first error lines of a failed build, and test outcomes."""
        repo, names, archs = lab.require_repo(), tuple(name or ()), tuple(arch) if arch else None
        spec = {"name": ",".join(names) or "all", "archs": list(archs or ()), "test": test}
        new = NewTask(
            kind="kernel",
            title=f"build kernels {spec['name']}",
            spec=spec,
            requires=Requires(tools=("nvcc",)),
        )

        def work() -> tuple[Literal["done", "failed"], dict[str, Any]]:
            from tools.executors import build_kernels  # nvcc tooling only when a build runs

            report = build_kernels(repo, lab.settings.lab_dir / "kernel-cache", names, archs, test)
            return ("done" if report.ok else "failed"), report.model_dump(mode="json")

        return lab.call(lambda: lab.start_job(new, work))

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=False,
        )
    )
    def deploy(
        directory: Annotated[
            str,
            Field(description="deployment directory (holding deploy.toml), relative to the repo"),
        ],
        action: Literal["up", "down", "dry-run"] = "up",
        gpu_total_gb: Annotated[float | None, Field(gt=0)] = None,
    ) -> JobStarted:
        """Start (up), stop (down) or plan (dry-run) a model server from a deployment directory,
        through the Docker Engine API. Returns a job id at once; get_task(job) shows the result:
        the container, image digest, endpoint and readiness time, or the server's last log lines."""
        repo = lab.require_repo()
        folder = (repo / directory).resolve()
        if not folder.is_relative_to(repo.resolve()):
            raise ToolError(f"INVALID_INPUT: {directory!r} is outside the repository")
        spec = {"directory": directory, "action": action}
        new = NewTask(
            kind="other",
            title=f"deploy {action} {directory}",
            spec=spec,
            requires=Requires(tools=("docker",)),
        )

        def work() -> tuple[Literal["done", "failed"], dict[str, Any]]:
            from tools import deploy as deploying  # the docker SDK loads only when a deploy runs

            cfg = deploying.load_config(folder)
            if action == "down":
                return "done", {"removed": deploying.down(cfg.name)}
            plan = deploying.plan(cfg, gpu_total_gb)
            if action == "dry-run":
                return "done", plan.model_dump(mode="json")
            return "done", json.loads(deploying.to_json(deploying.up(cfg, plan), cfg.secret_env))

        return lab.call(lambda: lab.start_job(new, work))

    @server.tool(annotations=WRITE)
    def benchmark(
        endpoint: Annotated[
            str, Field(description="http://host:port of an OpenAI-compatible server")
        ],
        model: Annotated[
            str | None, Field(description="served model name; default: /v1/models")
        ] = None,
        concurrency: Annotated[
            list[Annotated[int, Field(ge=1, le=1024)]] | None,
            Field(min_length=1, description="closed-loop levels (default [1])"),
        ] = None,
        output_len: Annotated[int, Field(ge=1, le=32768)] = 128,
        input_len: Annotated[int, Field(ge=1, le=131072)] = 128,
        requests: Annotated[int | None, Field(ge=1)] = None,
        server_kind: Literal[
            "auto", "vllm", "sglang", "trt-llm", "transformers", "openai"
        ] = "auto",
        gpu: str | None = None,
        platform: str | None = None,
        quant: str | None = None,
        tp: Annotated[int | None, Field(ge=1)] = None,
    ) -> JobStarted:
        """Benchmark a streaming OpenAI-compatible server: closed-loop levels of concurrency, each
        warmed up, with vLLM-named TTFT/TPOT/ITL/E2EL statistics, throughput, realized
        concurrency, scaling efficiency and the knee. Returns a job id at once; get_task(job)
        shows the report. With gpu/platform (and quant, tp) its single and batched TPS become
        findings for the facts pipeline."""
        from tools.bench_client import Target

        try:
            Target.from_url(endpoint, "")
        except ValueError as exc:
            raise ToolError(f"INVALID_INPUT: {exc}") from exc
        lab_meta = {"gpu": gpu, "platform": platform, "quant": quant, "tp": tp}
        spec = {"endpoint": endpoint, "served_model_name": model, "concurrency": concurrency or [1],
                "output_len": output_len, "input_len": input_len, "requests": requests,
                "server_kind": server_kind, **lab_meta}  # fmt: skip
        spec = {k: v for k, v in spec.items() if v is not None}
        new = NewTask(kind="benchmark", title=f"benchmark {model or endpoint}", spec=spec)

        def work() -> tuple[Literal["done", "failed"], dict[str, Any]]:
            import asyncio

            from tools import bench_lab, benchmark

            report = asyncio.run(benchmark.run(bench_lab.config_from_spec(spec, endpoint)))
            ok = any(lv.valid for lv in report.levels)  # invalid levels are never findings
            return ("done" if ok else "failed"), bench_lab.payload(report)

        def lab_findings(task: Task, payload: dict[str, Any]) -> Sequence[NewFinding]:
            from tools.bench_lab import findings

            return findings(task, payload) if gpu and platform else ()

        return lab.call(lambda: lab.start_job(new, work, lab_findings))

    for tool in LAB_TOOLS:
        annotations = ToolAnnotations(
            read_only_hint=tool.read_only,
            idempotent_hint=tool.idempotent,
            destructive_hint=tool.destructive,
            open_world_hint=False,
        )
        server.add_tool(tool.fn, name=tool.name, title=tool.title, annotations=annotations)
    return server


def _claim_registering(lab: Lab, agent: str, lease: float, kinds: list[str] | None) -> Claim:
    from swarm import agents
    from swarm.errors import UnknownAgent
    from swarm.models import Capabilities

    try:
        return queue.claim(lab.store, agent, _now(), lease, kinds)
    except UnknownAgent:
        caps = Capabilities(
            host=os.uname().nodename, gpu_note="registered by the MCP server: no GPUs"
        )
        agents.register(lab.store, agent, caps, _now())
        return queue.claim(lab.store, agent, _now(), lease, kinds)


# ---------------------------------------------------------------- transports


def _watch_parent(interval: float = 1.0) -> None:
    """Exit when the parent dies: stdin may be held open by another process (python-sdk#526)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="ppid-watchdog", daemon=True).start()


def serve_stdio(settings: Settings) -> None:
    _watch_parent()
    build_server(Lab(settings)).run("stdio")


def http_token(lab_dir: Path) -> tuple[str, bool]:
    """The bearer token in the lab directory, created (0600) on first use; (token, created)."""
    path = lab_dir / "http_token"
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    token = secrets.token_urlsafe(32)
    try:  # created whole or not at all: a crash or a full disk never leaves an empty token
        with atomic_open(path, perms=0o600, exclusive=True) as handle:
            handle.write(token + "\n")
    except FileExistsError:  # another server created it meanwhile: use that one
        return path.read_text(encoding="utf-8").strip(), False
    return token, True


class BearerAuth:
    """ASGI middleware: every MCP request needs `Authorization: Bearer <token>`, else 401.
    The web page's routes check their own session (a cookie, or the same bearer header)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(MCP_PATH):
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = b'{"error": "missing or wrong bearer token (see the lab dir http_token)"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(settings: Settings, host: str) -> tuple[Any, str, bool]:
    token, created = http_token(settings.lab_dir)
    build_all_models()  # the shared server: build models now, not racing in the first calls
    lab = Lab(settings)
    app = build_server(lab).streamable_http_app(host=host)
    from swarm import web  # the page for people, at / beside /mcp in the same app

    resolve = web.operator_only(token)
    app.router.routes.extend(web.routes(lab.store, lab.repo, settings.lab_dir, resolve))
    return BearerAuth(app, token), token, created


def serve_http(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    app, token, created = http_app(settings, host)
    if created:
        print(
            f"swarm serve: new bearer token (kept in {settings.lab_dir / 'http_token'}): {token}",
            file=sys.stderr,
        )
    print(f"swarm serve: MCP over Streamable HTTP at http://{host}:{port}/mcp", file=sys.stderr)
    print(
        f"swarm serve: the lab's web page at http://{host}:{port}/ (log in with a token)",
        file=sys.stderr,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
