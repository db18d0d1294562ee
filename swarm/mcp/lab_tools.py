"""The lab's MCP tools, one function per family: knowledge (search, verify_facts), jobs on
this host (build_kernel, deploy, benchmark) and the registered lab tools (tools/registry.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from swarm import SCHEMA_VERSION
from swarm.core import limits
from swarm.core.kinds import ServerKind
from swarm.core.models import (
    Model,
    NewTask,
    Requires,
)
from swarm.db.search import SearchResults
from swarm.mcp.lab import JobStarted, Lab
from swarm.mcp.queue_tools import PAGE_MAX, READ, WRITE, new_task
from tools.registry import LAB_TOOLS


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


def knowledge_tools(server: MCPServer, lab: Lab) -> None:
    """search and verify_facts: what the lab knows, read only."""

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


def job_tools(server: MCPServer, lab: Lab) -> None:
    """build_kernel and deploy: detached jobs on this host."""

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


def benchmark_tools(server: MCPServer, lab: Lab) -> None:
    """benchmark: a detached job measuring a server."""

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
        server_kind: ServerKind = "auto",
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
            lambda: new_task(kind="benchmark", title=f"benchmark {model or endpoint}", spec=spec)
        )
        return lab.start_job(new, "benchmark", lab.caller(ctx))


def registered_tools(server: MCPServer) -> None:
    """The lab tools tools/registry.py lists (GPU inventory and the like)."""
    for tool in LAB_TOOLS:
        annotations = ToolAnnotations(
            read_only_hint=tool.read_only,
            idempotent_hint=tool.idempotent,
            destructive_hint=tool.destructive,
            open_world_hint=False,
        )
        server.add_tool(tool.fn, name=tool.name, title=tool.title, annotations=annotations)
