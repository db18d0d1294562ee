"""The MCP server: the queue and the lab tools for agents, over stdio or Streamable HTTP.

Only swarm/mcp/ imports the `mcp` SDK. build_server assembles the tool families
(swarm/mcp/queue_tools.py, swarm/mcp/lab_tools.py) and the resources. Each tool is a
thin adapter: derive the caller from the connection, call one library function, return its
pydantic model, or raise a ToolError an agent can act on (`CODE: what happened; what to do`).
Every call reads through to the database (no task state cached in the process).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError

from swarm import __version__
from swarm.core.settings import Settings
from swarm.mcp.args import invalid_arguments, refuse
from swarm.mcp.lab import PRINCIPAL as PRINCIPAL  # swarm/mcp/http.py puts the caller there
from swarm.mcp.lab import Lab as Lab  # re-exported: build_server(Lab(settings))
from swarm.mcp.lab_tools import benchmark_tools, job_tools, knowledge_tools, registered_tools
from swarm.mcp.queue_tools import add_tools, claim_tools, lease_tools, task_tools
from swarm.mcp.resources import add_resources

T = TypeVar("T")
INSTRUCTIONS = """swarm: the lab's shared task queue. You are {agent}; {source}.
Loop: claim_task -> work, calling heartbeat before lease.expires_at -> report_result(task_id,
epoch). Only the holder heartbeats, releases or reports a task, and only your own write calls
renew your leases. LEASE_LOST: drop that work, claim another. deploy, benchmark and
build_kernel return a job: poll get_task(job). Errors start with a CODE and say the next step.
The work_loop prompt has the rules in full."""
MCP_PATH = "/mcp"  # the SDK's Streamable HTTP path; everything else is the web page


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
    for family in (claim_tools, lease_tools, task_tools, add_tools, knowledge_tools, job_tools):
        family(server, lab)
    benchmark_tools(server, lab)
    registered_tools(server)
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
