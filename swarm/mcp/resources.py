"""What an MCP client reads without calling a tool: the board, the facts, the open conflicts,
one task (a resource template), and the `work_loop` prompt with this lab's rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from swarm.core.errors import SwarmError
from swarm.queue import queue

if TYPE_CHECKING:
    from swarm.mcp.lab import Lab

JSON = "application/json"
WORK_LOOP = """You work for {lab}'s shared task queue as {agent}. Your identity comes from your
connection: never pass another agent's name.

1. Once per host: register_agent with your GPUs (name, sm_XY arch, memory) and tools, so GPU
   work is routed to you.
2. claim_task (optionally kinds=[...]). claimed=false gives the reason: wait, or stop.
3. Do the task's work as its spec says. Before lease.expires_at, call heartbeat(task_id, epoch);
   any write call of yours also renews your leases, reads (list_tasks, get_task) do not.
4. report_result(task_id, epoch, status="done" or "failed", result={{...}}, note=<one line why
   when it failed>), with findings for what you measured or read: each a claim with evidence
   (cite your run as {{"kind": "run", "locator": "this", "metric": <result key>}}).
5. Cannot finish here (wrong hardware, missing tool)? release_task(task_id, epoch, note=why).

Rules: only the holder heartbeats, releases or reports a task (FORBIDDEN otherwise). LEASE_LOST
means someone else owns the task now: drop the work, claim another. Triage decisions on
conflicting facts are people's: report evidence, never a decision. Long actions (deploy,
benchmark, build_kernel) return a job id: poll get_task(job). TOOL_MISSING: that executable is
not on this host; queue the work with add_task for a host that has it. INVALID_INPUT names the
field, the rule and your value: fix that argument and call again."""


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def add_resources(server: MCPServer, lab: Lab) -> None:
    @server.resource("swarm://board", name="board", mime_type=JSON)
    def board() -> str:
        """The lab at a glance: deployments, GPUs, tasks by state and kind, claimed tasks."""
        from swarm.present.board import board as read_board

        return read_board(lab.store, datetime.now(UTC)).model_dump_json()

    @server.resource("swarm://facts", name="facts", mime_type=JSON)
    def facts() -> str:
        """The verified facts as last written (facts/verified_facts.json)."""
        path = lab.require_repo() / "facts" / "verified_facts.json"
        if not path.exists():
            raise ResourceError(f"NOT_FOUND: {path} is not written yet (the verify task does)")
        return path.read_text(encoding="utf-8")

    @server.resource("swarm://conflicts", name="conflicts", mime_type=JSON)
    def conflicts() -> str:
        """Open conflicts between findings, with each side's findings, for people to decide."""
        from swarm.lab import pipeline as facts_pipeline

        outcome = facts_pipeline.run(lab.store, lab.require_repo(), write=False)
        open_ = [c.model_dump(mode="json") for c in outcome.facts.conflicts if c.state == "open"]
        return _json({"open_conflicts": len(open_), "conflicts": open_})

    @server.resource("swarm://tasks/{task_id}", name="task", mime_type=JSON)
    def task(task_id: str) -> str:
        """One task in full with its results (what get_task returns)."""
        try:
            found = queue.get_task(lab.store, task_id)
            results = queue.task_results(lab.store, task_id)
        except SwarmError as exc:
            raise ResourceError(f"{exc.code()}: {exc}") from exc
        return _json(
            {
                "task": found.model_dump(mode="json"),
                "results": [r.model_dump(mode="json") for r in results],
            }
        )

    @server.prompt(name="work_loop", title="The claim, heartbeat, report loop")
    def work_loop() -> str:
        """How to work this lab's queue: claim -> heartbeat -> report, with the lab's rules."""
        who = "the agent your token names" if lab.http else lab.local.name
        return WORK_LOOP.format(lab="the lab", agent=who)
