"""One agent process for the MCP concurrency test: claim -> report through a shared HTTP server.

    python tests/mcp_agent.py URL TOKEN AGENT OUT

TOKEN is the agent's own (`swarm agent token AGENT`): the server derives who is calling from it.

Writes one JSON line per claim and report outcome to OUT, then exits when nothing is claimable.
"""

from __future__ import annotations

import json
import sys
import time

import anyio
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


async def main(url: str, token: str, agent: str, out: str) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    log = open(out, "a", buffering=1, encoding="utf-8")  # noqa: SIM115  # line-buffered log
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        while True:
            start = time.perf_counter()
            claim = await client.call_tool("claim_task", {})
            took = time.perf_counter() - start
            body = claim.structured_content or {}
            if claim.is_error:
                log.write(json.dumps({"event": "error", "text": claim.content[0].text}) + "\n")
                continue
            if not body["claimed"]:
                return
            task, epoch = body["task"]["id"], body["lease"]["epoch"]
            log.write(
                json.dumps({"event": "claimed", "task": task, "epoch": epoch, "s": took}) + "\n"
            )
            done = await client.call_tool(
                "report_result",
                {"task_id": task, "epoch": epoch, "status": "done", "result": {"by": agent}},
            )
            event = "error" if done.is_error else "reported"
            text = done.content[0].text if done.is_error else None
            log.write(json.dumps({"event": event, "task": task, "epoch": epoch, "text": text}))
            log.write("\n")


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:5])
