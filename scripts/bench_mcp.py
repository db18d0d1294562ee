#!/usr/bin/env python3
"""The MCP server's cost against a bare MCPServer with one trivial tool, in the same run.

    python scripts/bench_mcp.py [--spawns 8] [--calls 200] [--agents 20] [--tasks 400] [--json]

1. spawn -> ready (process start to the listed tools) of `swarm serve` vs the bare server
   (stdio), and vs a bare server with as many trivial tools as swarm lists;
2. per-call latency of claim_task vs the bare `ping` over stdio and over Streamable HTTP;
3. 20 agent processes claiming and reporting through one `swarm serve --http`: claim p50/p99,
   beside 20 agents making the same two calls per cycle to the bare server as `ping`. Agents
   pause --pace seconds between tasks (as agents that think do) in lockstep (all wake together:
   the worst case), then for a uniform [0, 2*pace] (the same mean load), then flat out. Each client is warmed first (the SDK compiles a tool's output schema on first use).
4. what agents read: `tools/list` in bytes and cl100k tokens (counted offline with bpe-openai,
   which embeds the cl100k_base table) and a `claim_task` answer for a catalog task, in bytes,
   beside the numbers before issue #15 (7,638 tokens; 3,320 bytes). `--sizes-only` runs just this.
Servers bind 127.0.0.1 only and are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchenv import as_installed, seed_tasks  # noqa: E402  # beside this script


def serve_bare(transport: str, port: int, tools: int = 1) -> None:
    """A bare MCPServer: `ping`, and tools - 1 more trivial tools like it."""
    from mcp.server import MCPServer

    server = MCPServer("bare", log_level="WARNING")

    def ping(x: int) -> int:
        """x + 1"""
        return x + 1

    for i in range(tools):
        server.add_tool(ping, name="ping" if i == 0 else f"ping{i}")

    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)


def env_for(db: Path) -> dict[str, str]:
    env = {**os.environ, "SWARM_DB": str(db), "SWARM_AGENT": "bench", "PYTHONPATH": str(REPO)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # swarm as installed: main() compiled it once
    return env


def stdio_params(kind: str, db: Path, tools: int = 1) -> Any:
    from mcp import StdioServerParameters

    if kind == "swarm":
        return StdioServerParameters(
            command=sys.executable, args=["-m", "swarm.cli", "serve"], env=env_for(db)
        )
    args = [__file__, "--serve-bare", "stdio", "--bare-tools", str(tools)]
    return StdioServerParameters(command=sys.executable, args=args, env=env_for(db))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


async def spawn_to_ready(kind: str, db: Path, tools: int = 1) -> tuple[float, int]:
    """Seconds from spawning the server to its tool list, and how many tools it listed."""
    from mcp import Client

    start = time.perf_counter()
    async with Client(stdio_params(kind, db, tools)) as client:
        listed = await client.list_tools()
        return time.perf_counter() - start, len(listed.tools)


async def call_latency(client: Any, kind: str, calls: int) -> list[float]:
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        if kind == "swarm":
            result = await client.call_tool("claim_task", {"agent": "bench"})
        else:
            result = await client.call_tool("ping", {"x": i})
        samples.append(time.perf_counter() - start)
        assert not result.is_error, result
    return samples


async def stdio_latency(kind: str, db: Path, calls: int) -> list[float]:
    from mcp import Client

    async with Client(stdio_params(kind, db)) as client:
        await call_latency(client, kind, 5)  # warm-up
        return await call_latency(client, kind, calls)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_http(kind: str, db: Path) -> tuple[subprocess.Popen[bytes], str, str | None]:
    port = free_port()
    if kind == "swarm":
        argv = [sys.executable, "-m", "swarm.cli", "serve", "--http", "--port", str(port)]
    else:
        argv = [sys.executable, __file__, "--serve-bare", "http", "--port", str(port)]
    proc = subprocess.Popen(
        argv, env=env_for(db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} HTTP server did not start") from None
            time.sleep(0.05)
    token = (db.parent / "http_token").read_text().strip() if kind == "swarm" else None
    return proc, f"http://127.0.0.1:{port}/mcp", token


def http_client(url: str, token: str | None) -> tuple[Any, Any]:
    from mcp import Client
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"} if token else None)
    return http, Client(streamable_http_client(url, http_client=http))


async def http_latency(url: str, token: str | None, kind: str, calls: int) -> list[float]:
    http, client = http_client(url, token)
    async with http, client:
        await call_latency(client, kind, 5)
        return await call_latency(client, kind, calls)


async def agent_loop(
    url: str, token: str, name: str, out: str, pace: str, mode: str, kind: str, cycles: str
) -> None:
    """One agent process: claim -> report until the queue is empty (swarm), or the same two calls
    per cycle as `ping` for `cycles` cycles (bare: the SDK's own cost under the same load)."""
    http, client = http_client(url, None if token == "-" else token)
    claims = []
    async with http, client:
        # Start-up (importing the SDK, connecting) is not what is measured: warm up, say ready,
        # and wait until every agent is, so the claims run with all 20 agents live. The SDK
        # client compiles a tool's output schema on its first call (100-350 ms each with 20
        # agents starting at once, measured): a claim of a kind nobody queued warms claim_task
        # without taking a task.
        if kind == "swarm":
            await client.call_tool("list_tasks", {"limit": 1})
            await client.call_tool("claim_task", {"agent": name, "kinds": ["research"]})
        else:
            await client.call_tool("ping", {"x": 0})
        Path(out + ".ready").touch()
        while not Path(out).with_name("go").exists():
            await anyio.sleep(0.01)
        rng = random.Random(name)
        for cycle in range(int(cycles)):
            # An agent thinks between calls: exactly `pace` (lockstep: all 20 wake together, the
            # worst case) or uniform over [0, 2*pace] (jittered: the same mean load).
            think = float(pace) if mode == "lockstep" else rng.uniform(0, 2 * float(pace))
            await anyio.sleep(think)
            start = time.perf_counter()
            if kind == "bare":
                await client.call_tool("ping", {"x": cycle})
                claims.append(time.perf_counter() - start)
                await client.call_tool("ping", {"x": cycle})
                continue
            body = (await client.call_tool("claim_task", {"agent": name})).structured_content
            claims.append(time.perf_counter() - start)
            if not body or not body["claimed"]:
                claims.pop()  # the empty queue's answer ends the run; it is not a claim
                break
            await client.call_tool(  # the operator's token acts for the agent it claimed as
                "report_result",
                {"task_id": body["task"]["id"], "epoch": body["lease"]["epoch"], "status": "done",
                 "agent": name},
            )  # fmt: skip
    Path(out).write_text(json.dumps(claims))


def concurrent_agents(
    db: Path, n_agents: int, n_tasks: int, pace: float, mode: str, kind: str
) -> dict[str, Any]:
    db.parent.mkdir()
    seed_tasks(db, n_tasks)
    proc, url, token = start_http(kind, db)
    # swarm agents run until the queue is empty; bare ones make as many cycles (and one more,
    # as a swarm agent's last claim finds the queue empty)
    cycles = n_tasks if kind == "swarm" else -(-n_tasks // n_agents)
    try:
        outs = [db.parent / f"agent{i}.json" for i in range(n_agents)]
        start = time.perf_counter()
        agents = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--agent",
                    url,
                    token or "-",
                    f"a{i}",
                    str(out),
                    str(pace),
                    mode,
                    kind,
                    str(cycles),
                ],
                env=env_for(db),
            )
            for i, out in enumerate(outs)
        ]
        while not all(Path(f"{out}.ready").exists() for out in outs):
            time.sleep(0.05)
        (db.parent / "go").touch()
        start = time.perf_counter()
        for a in agents:
            a.wait(timeout=600)
        wall = time.perf_counter() - start
        claims = [c for out in outs for c in json.loads(out.read_text())]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {
        "server": kind,
        "agents": n_agents,
        "pace_s": pace,
        "mode": mode,
        "claims": len(claims),
        "claim_p50_ms": pct(claims, 0.5),
        "claim_p99_ms": pct(claims, 0.99),
        "wall_s": round(wall, 1),
    }


BEFORE = {"tools_list_tokens": 7638, "claim_answer_bytes": 3320}  # measured before issue #15
LIMITS = {"tools_list_tokens": 4000, "claim_answer_bytes": 1200}


def sizes(folder: Path) -> dict[str, Any]:
    """What an agent reads: tools/list (bytes, cl100k tokens) and one claim_task answer for a
    catalog deploy task on a GPU host (the text content an agent is shown, and the structure)."""
    from datetime import UTC, datetime

    import bpe_openai  # cl100k_base ships inside the wheel: nothing is downloaded
    from mcp import Client

    from swarm.core.models import Capabilities, GpuInfo
    from swarm.core.settings import Settings
    from swarm.mcp.server import Lab, build_server
    from swarm.queue import agents, catalog

    enc = bpe_openai.get_encoding("cl100k_base")
    folder.mkdir()
    lab = Lab(Settings.for_db(folder / "lab.db", lab_dir=folder), agent="bench")
    now = datetime.now(UTC)
    catalog.load_catalog(lab.store, REPO / "tasks", now)
    gpu = GpuInfo(index=0, name="RTX Pro 6000", uuid="GPU-0", arch="sm_120", memory_total_gb=96)
    agents.register(lab.store, "bench", Capabilities(host="h", gpus=(gpu,), tools=("docker",)), now)
    out: dict[str, Any] = {}

    async def read() -> None:
        async with Client(build_server(lab)) as client:
            tools = await client.list_tools()
            wire = tools.model_dump_json(by_alias=True, exclude_none=True)
            out["tools"] = len(tools.tools)
            out["tools_list_bytes"] = len(wire.encode())
            out["tools_list_tokens"] = len(enc.encode(wire))
            claim = await client.call_tool("claim_task", {"kinds": ["deploy"]})
            answer = claim.content[0].text  # type: ignore[union-attr]  # a text block
            out["claim_answer_bytes"] = len(answer.encode())
            out["claim_answer_tokens"] = len(enc.encode(answer))
            out["claim_structured_bytes"] = len(
                json.dumps(claim.structured_content, separators=(",", ":")).encode()
            )

    anyio.run(read)
    lab.store.close()
    return out


def print_sizes(got: dict[str, Any]) -> None:
    print("what agents read | before #15 | now | limit")
    print("--- | --- | --- | ---")
    print(f"tools/list, cl100k tokens ({got['tools']} tools) | {BEFORE['tools_list_tokens']:,} | "
          f"{got['tools_list_tokens']:,} | {LIMITS['tools_list_tokens']:,}")  # fmt: skip
    print(f"tools/list, bytes | - | {got['tools_list_bytes']:,} | -")
    print(f"claim_task answer (catalog task), bytes | {BEFORE['claim_answer_bytes']:,} | "
          f"{got['claim_answer_bytes']:,} | {LIMITS['claim_answer_bytes']:,}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spawns", type=int, default=8)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-bare", choices=("stdio", "http"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--bare-tools", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument(
        "--pace", type=float, default=0.5, help="seconds an agent waits between tasks (0: flat out)"
    )
    parser.add_argument("--agent", nargs=8, help=argparse.SUPPRESS)
    parser.add_argument(
        "--sizes-only", action="store_true", help="only what agents read (tools/list, a claim)"
    )
    args = parser.parse_args()
    if args.serve_bare:
        return serve_bare(args.serve_bare, args.port, args.bare_tools)
    if args.agent:
        return anyio.run(agent_loop, *args.agent)

    as_installed(os.environ)  # bytecode for swarm, as pip leaves it (scripts/benchenv.py)
    report: dict[str, Any] = {
        "schema_version": 1,
        "environment": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
    }
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        folder = Path(tmp)
        report["sizes"] = sizes(folder / "sizes")
        if args.sizes_only:
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                print_sizes(report["sizes"])
            return
        # bare-N: a bare server with as many trivial tools as swarm lists, which tells the
        # SDK's cost of registering and listing tools from swarm's own
        spawn: dict[str, list[float]] = {"swarm": [], "bare": [], "bare-N": []}
        n_tools = 1
        for i in range(args.spawns):  # interleaved, so load drifts hit both alike
            for kind in spawn:
                wall, listed = anyio.run(
                    spawn_to_ready, kind.removesuffix("-N"), folder / f"spawn{i}" / "lab.db",
                    n_tools if kind == "bare-N" else 1,
                )  # fmt: skip
                n_tools = listed if kind == "swarm" else n_tools
                spawn[kind].append(wall)
        report["spawn_to_ready_ms"] = {
            k: round(statistics.median(v) * 1000, 1) for k, v in spawn.items()
        }
        report["tools_listed"] = n_tools
        report["spawn_ratio"] = round(
            statistics.median(spawn["swarm"]) / statistics.median(spawn["bare"]), 2
        )
        report["spawn_ratio_vs_bare_n"] = round(
            statistics.median(spawn["swarm"]) / statistics.median(spawn["bare-N"]), 2
        )

        db = folder / "calls" / "lab.db"
        db.parent.mkdir()
        seed_tasks(db, 2 * args.calls + 20)
        latency: dict[str, dict[str, float]] = {}
        for kind in ("swarm", "bare"):
            samples = anyio.run(stdio_latency, kind, db, args.calls)
            latency[f"stdio {kind}"] = {"p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99)}
        for kind in ("swarm", "bare"):
            proc, url, token = start_http(kind, db)
            try:
                samples = anyio.run(http_latency, url, token, kind, args.calls)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            latency[f"http {kind}"] = {"p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99)}
        report["call_latency"] = latency
        report["call_ratio_p50"] = {
            t: round(latency[f"{t} swarm"]["p50_ms"] / latency[f"{t} bare"]["p50_ms"], 2)
            for t in ("stdio", "http")
        }
        report["concurrent_http"] = [
            concurrent_agents(
                folder / f"{kind}-{mode.replace(' ', '-')}" / "lab.db",
                args.agents,
                args.tasks,
                pace,
                mode,
                kind,
            )
            for mode, pace in (("lockstep", args.pace), ("jittered", args.pace), ("flat out", 0.0))
            for kind in ("swarm", "bare")
        ]

    if args.json:
        print(json.dumps(report, indent=2))
        return
    s = report["spawn_to_ready_ms"]
    n = report["tools_listed"]
    print(
        f"spawn -> ready (stdio, median of {args.spawns}): swarm serve ({n} tools) {s['swarm']} ms,"
        f" bare MCPServer (1 tool) {s['bare']} ms, ratio {report['spawn_ratio']}; bare with {n}"
        f" trivial tools {s['bare-N']} ms, ratio {report['spawn_ratio_vs_bare_n']}"
    )
    print("\ntransport | server | p50 ms | p99 ms")
    print("--- | --- | --- | ---")
    for name, v in latency.items():
        transport, kind = name.split()
        tool = "claim_task" if kind == "swarm" else "ping (bare)"
        print(f"{transport} | {tool} | {v['p50_ms']} | {v['p99_ms']}")
    print(f"ratios (p50, claim_task / ping): {report['call_ratio_p50']}")
    print(f"\n{args.agents} agent processes on one HTTP server, each call timed by its agent")
    print("agents wake | s between tasks | call | calls | p50 ms | p99 ms | wall s")
    print("--- | --- | --- | --- | --- | --- | ---")
    for c in report["concurrent_http"]:
        call = "claim_task" if c["server"] == "swarm" else "ping (bare)"
        print(
            f"{c['mode']} | {c['pace_s']} | {call} | {c['claims']} | {c['claim_p50_ms']} | "
            f"{c['claim_p99_ms']} | {c['wall_s']}"
        )
    print()
    print_sizes(report["sizes"])
    print(f"environment: {report['environment']}")


if __name__ == "__main__":
    main()
