#!/usr/bin/env python3
"""The MCP server's cost against a bare MCPServer with one trivial tool, in the same run.

    python scripts/bench_mcp.py [--spawns 8] [--calls 200] [--agents 20] [--tasks 400] [--json]

1. spawn -> ready (process start to a listed tool) of `swarm serve` vs the bare server (stdio);
2. per-call latency of claim_task vs the bare `ping` over stdio and over Streamable HTTP;
3. 20 agent processes claiming and reporting through one `swarm serve --http`: claim p50/p99,
   with agents pausing --pace seconds between tasks (as agents that think do) in lockstep (all
   wake together: the worst case), then for a uniform [0, 2*pace] (the same mean load), then
   flat out. Each client is warmed first (the SDK compiles a tool's output schema on first use).
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


def serve_bare(transport: str, port: int) -> None:
    from mcp.server import MCPServer

    server = MCPServer("bare", log_level="WARNING")

    @server.tool()
    def ping(x: int) -> int:
        """x + 1"""
        return x + 1

    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)


def env_for(db: Path) -> dict[str, str]:
    env = {**os.environ, "SWARM_DB": str(db), "SWARM_AGENT": "bench", "PYTHONPATH": str(REPO)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # swarm as installed: main() compiled it once
    return env


def stdio_params(kind: str, db: Path) -> Any:
    from mcp import StdioServerParameters

    if kind == "swarm":
        return StdioServerParameters(
            command=sys.executable, args=["-m", "swarm.cli", "serve"], env=env_for(db)
        )
    return StdioServerParameters(
        command=sys.executable, args=[__file__, "--serve-bare", "stdio"], env=env_for(db)
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


async def spawn_to_ready(kind: str, db: Path) -> float:
    from mcp import Client

    start = time.perf_counter()
    async with Client(stdio_params(kind, db)) as client:
        await client.list_tools()
        return time.perf_counter() - start


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


async def agent_loop(url: str, token: str, name: str, out: str, pace: str, mode: str) -> None:
    http, client = http_client(url, token)
    claims = []
    async with http, client:
        # Start-up (importing the SDK, connecting) is not what is measured: warm up, say ready,
        # and wait until every agent is, so the claims run with all 20 agents live. The SDK
        # client compiles a tool's output schema on its first call (100-350 ms each with 20
        # agents starting at once, measured): a claim of a kind nobody queued warms claim_task
        # without taking a task.
        await client.call_tool("list_tasks", {"limit": 1, "agent": name})
        await client.call_tool("claim_task", {"agent": name, "kinds": ["research"]})
        Path(out + ".ready").touch()
        while not Path(out).with_name("go").exists():
            await anyio.sleep(0.01)
        rng = random.Random(name)
        while True:
            # An agent thinks between calls: exactly `pace` (lockstep: all 20 wake together, the
            # worst case) or uniform over [0, 2*pace] (jittered: the same mean load).
            think = float(pace) if mode == "lockstep" else rng.uniform(0, 2 * float(pace))
            await anyio.sleep(think)
            start = time.perf_counter()
            body = (await client.call_tool("claim_task", {"agent": name})).structured_content
            claims.append(time.perf_counter() - start)
            if not body or not body["claimed"]:
                break
            await client.call_tool(
                "report_result",
                {"task_id": body["task"]["id"], "epoch": body["lease"]["epoch"], "status": "done"},
            )
    Path(out).write_text(json.dumps(claims[:-1]))


def concurrent_agents(
    db: Path, n_agents: int, n_tasks: int, pace: float, mode: str = "lockstep"
) -> dict[str, Any]:
    seed_tasks(db, n_tasks)
    proc, url, token = start_http("swarm", db)
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
                    str(token),
                    f"a{i}",
                    str(out),
                    str(pace),
                    mode,
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
        "agents": n_agents,
        "pace_s": pace,
        "mode": mode,
        "claims": len(claims),
        "claim_p50_ms": pct(claims, 0.5),
        "claim_p99_ms": pct(claims, 0.99),
        "wall_s": round(wall, 1),
    }


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
    parser.add_argument(
        "--pace", type=float, default=0.5, help="seconds an agent waits between tasks (0: flat out)"
    )
    parser.add_argument("--agent", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        return serve_bare(args.serve_bare, args.port)
    if args.agent:
        return anyio.run(agent_loop, *args.agent)

    as_installed(os.environ)  # bytecode for swarm, as pip leaves it (scripts/benchenv.py)
    report: dict[str, Any] = {
        "schema_version": 1,
        "environment": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
    }
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        folder = Path(tmp)
        spawn: dict[str, list[float]] = {"swarm": [], "bare": []}
        for i in range(args.spawns):  # interleaved, so load drifts hit both alike
            for kind in ("swarm", "bare"):
                spawn[kind].append(anyio.run(spawn_to_ready, kind, folder / f"spawn{i}" / "lab.db"))
        report["spawn_to_ready_ms"] = {
            k: round(statistics.median(v) * 1000, 1) for k, v in spawn.items()
        }
        report["spawn_ratio"] = round(
            statistics.median(spawn["swarm"]) / statistics.median(spawn["bare"]), 2
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
        agents_db = folder / "agents" / "lab.db"
        agents_db.parent.mkdir()
        report["concurrent_http"] = [
            concurrent_agents(agents_db, args.agents, args.tasks, args.pace)
        ]
        jitter_db = folder / "jitter" / "lab.db"
        jitter_db.parent.mkdir()
        report["concurrent_http"].append(
            concurrent_agents(jitter_db, args.agents, args.tasks, args.pace, "jittered")
        )
        flat_db = folder / "flat" / "lab.db"
        flat_db.parent.mkdir()
        report["concurrent_http"].append(
            concurrent_agents(flat_db, args.agents, args.tasks, 0.0, "flat out")
        )

    if args.json:
        print(json.dumps(report, indent=2))
        return
    s = report["spawn_to_ready_ms"]
    print(
        f"spawn -> ready (stdio, median of {args.spawns}): swarm serve {s['swarm']} ms, bare MCPServer "
        f"{s['bare']} ms, ratio {report['spawn_ratio']}"
    )
    print("\ntransport | server | p50 ms | p99 ms")
    print("--- | --- | --- | ---")
    for name, v in latency.items():
        transport, kind = name.split()
        tool = "claim_task" if kind == "swarm" else "ping (bare)"
        print(f"{transport} | {tool} | {v['p50_ms']} | {v['p99_ms']}")
    print(f"ratios (p50, claim_task / ping): {report['call_ratio_p50']}")
    for c in report["concurrent_http"]:
        print(
            f"\n{c['agents']} agent processes on one HTTP server, {c['pace_s']} s between tasks "
            f"({c['mode']}): "
            f"{c['claims']} claims, claim p50 {c['claim_p50_ms']} ms, p99 {c['claim_p99_ms']} ms ({c['wall_s']} s)"
        )
    print(f"environment: {report['environment']}")


if __name__ == "__main__":
    main()
