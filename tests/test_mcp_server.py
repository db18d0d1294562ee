"""The MCP server through real clients: in memory, a `swarm serve` subprocess over stdio, and a
Streamable HTTP server on loopback with its bearer token."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from swarm.core.models import NewTask
from swarm.core.settings import Settings
from swarm.db.store import open_store
from swarm.mcp.server import Lab, build_server
from swarm.queue import auth, queue
from tests.conftest import REPO, T0, finished_job


def run(fn: Callable[[Client], Awaitable[None]], target: Any) -> None:
    async def main() -> None:
        async with Client(target) as client:
            await fn(client)

    anyio.run(main)


@pytest.fixture
def lab(db: str, tmp_path: Path) -> Lab:
    return Lab(Settings.for_db(db, lab_dir=tmp_path, lease_seconds=600), agent="a1")


def add(db: str | Path, n: int = 1, **fields: Any) -> list[str]:
    store = open_store(db)
    ids = [
        queue.add_task(store, NewTask(kind="other", title=f"t{i}", **fields), T0).id
        for i in range(n)
    ]
    store.close()
    return ids


# ---------------------------------------------------------------- in memory


def test_every_tool_is_annotated_and_the_lab_tools_come_from_the_registry(lab: Lab) -> None:
    async def check(client: Client) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {
            "claim_task",
            "register_agent",
            "heartbeat",
            "report_result",
            "release_task",
            "list_tasks",
            "get_task",
            "add_task",
            "gpu_inventory",
            "verify_facts",
            "search",
            "build_kernel",
            "deploy",
            "benchmark",
        }
        for tool in tools.values():
            assert tool.annotations is not None and tool.annotations.read_only_hint is not None, (
                tool.name
            )
            assert tool.description and tool.output_schema, tool.name
        assert tools["list_tasks"].annotations.read_only_hint is True
        assert tools["claim_task"].annotations.read_only_hint is False

    run(check, build_server(lab))


def test_output_schemas_name_each_field_once_without_a_title_repeating_it(lab: Lab) -> None:
    def properties(schema: object) -> list[dict[str, object]]:
        if isinstance(schema, dict):
            own = list(schema.get("properties", {}).values())
            return own + [p for v in schema.values() for p in properties(v)]
        return [p for v in schema for p in properties(v)] if isinstance(schema, list) else []

    async def check(client: Client) -> None:
        for tool in (await client.list_tools()).tools:
            fields = properties(tool.output_schema)
            assert fields and not [f for f in fields if "title" in f], tool.name

    run(check, build_server(lab))


def test_the_claim_heartbeat_report_loop_works_and_a_retry_is_one_result(lab: Lab) -> None:
    (task_id,) = add(lab.settings.db)

    async def loop(client: Client) -> None:
        claim = (await client.call_tool("claim_task", {"agent": "a1"})).structured_content
        assert claim["claimed"] and claim["task"]["id"] == task_id and claim["lease"]["epoch"] == 1
        beat = await client.call_tool("heartbeat", {"task_id": task_id, "epoch": 1})
        assert beat.structured_content["holder"] == "a1"
        args = {"task_id": task_id, "epoch": 1, "status": "done", "result": {"tps": 12.5}}
        first = await client.call_tool("report_result", args)
        again = await client.call_tool("report_result", args)
        assert not first.is_error and first.structured_content == again.structured_content
        detail = (await client.call_tool("get_task", {"task_id": task_id})).structured_content
        assert detail["task"]["state"] == "done" and len(detail["results"]) == 1

    run(loop, build_server(lab))


def test_a_stale_epoch_is_an_error_that_says_what_to_do(lab: Lab) -> None:
    (task_id,) = add(lab.settings.db)

    async def stale(client: Client) -> None:
        await client.call_tool("claim_task", {"agent": "a1"})
        result = await client.call_tool(
            "report_result", {"task_id": task_id, "epoch": 7, "status": "done"}
        )
        assert result.is_error
        assert (
            "LEASE_LOST" in result.content[0].text and "claim a new task" in result.content[0].text
        )
        missing = await client.call_tool("get_task", {"task_id": "nope-123"})
        assert missing.is_error and "NOT_FOUND" in missing.content[0].text

    run(stale, build_server(lab))


def test_nothing_claimable_is_an_answer_with_the_reason_not_an_error(lab: Lab) -> None:
    add(lab.settings.db, requires={"arch": "sm_121"})

    async def empty(client: Client) -> None:
        result = await client.call_tool("claim_task", {})
        assert not result.is_error
        assert result.structured_content["claimed"] is False
        assert "1 task waits for an sm_121 host" in result.structured_content["reason"]

    run(empty, build_server(lab))


def test_list_tasks_is_paged_with_a_cursor_and_capped(lab: Lab) -> None:
    ids = add(lab.settings.db, 5)

    async def pages(client: Client) -> None:
        first = (await client.call_tool("list_tasks", {"limit": 2})).structured_content
        assert [t["id"] for t in first["tasks"]] == ids[:2] and first["next_cursor"]
        rest = (
            await client.call_tool("list_tasks", {"limit": 10, "cursor": first["next_cursor"]})
        ).structured_content
        assert [t["id"] for t in rest["tasks"]] == ids[2:] and rest["next_cursor"] is None
        too_many = await client.call_tool("list_tasks", {"limit": 500})
        assert too_many.content[0].text == (
            "INVALID_INPUT: limit must be an integer from 1 to 100 (got 500)"
        )

    run(pages, build_server(lab))


def test_add_task_validates_the_spec_and_refuses_duplicates(lab: Lab) -> None:
    async def adds(client: Client) -> None:
        spec = {"gpu": "RTX 4090", "model": "Qwen3-8B", "platform": "vllm"}
        first = await client.call_tool("add_task", {"kind": "deploy", "title": "d", "spec": spec})
        assert not first.is_error
        dup = await client.call_tool(
            "add_task", {"kind": "deploy", "title": "d", "spec": {**spec, "model": "qwen3-8b"}}
        )
        assert (
            dup.is_error
            and "DUPLICATE" in dup.content[0].text
            and first.structured_content["id"] in dup.content[0].text
        )
        bad = await client.call_tool(
            "add_task", {"kind": "deploy", "title": "d", "spec": {"gpu": "x"}}
        )
        assert bad.is_error and "model is required" in bad.content[0].text

    run(adds, build_server(lab))


def test_reads_never_renew_a_lease_and_the_holders_own_writes_do(lab: Lab) -> None:
    add(lab.settings.db, 2)

    async def renew(client: Client) -> None:
        claim = (await client.call_tool("claim_task", {"lease_seconds": 30})).structured_content
        short = claim["lease"]["expires_at"]

        async def expiry() -> str:
            detail = await client.call_tool("get_task", {"task_id": claim["task"]["id"]})
            return str(detail.structured_content["task"]["lease"]["expires_at"])

        await client.call_tool("list_tasks", {})
        await client.call_tool("gpu_inventory", {})
        assert await expiry() == short  # reads change nothing
        await client.call_tool("claim_task", {"lease_seconds": 30})  # a write of the holder's
        assert await expiry() > short  # now + the default 600 s

    run(renew, build_server(lab))


def test_gpu_inventory_says_plainly_when_there_is_no_gpu(lab: Lab) -> None:
    async def inventory(client: Client) -> None:
        body = (await client.call_tool("gpu_inventory", {})).structured_content
        if body["readings"]:
            pytest.skip("this machine has an NVIDIA GPU")
        assert body["note"]

    run(inventory, build_server(lab))


# ---------------------------------------------------------------- stdio subprocess


def _env(db: str | Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "SWARM_DB": str(db), "PYTHONPATH": str(REPO), **extra}


def test_swarm_serve_over_stdio_serves_a_real_client(db: str) -> None:
    (task_id,) = add(db)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "swarm.cli", "serve"],
        env=_env(db, SWARM_AGENT="stdio-agent"),
    )

    async def loop(client: Client) -> None:
        claim = (await client.call_tool("claim_task", {})).structured_content
        assert claim["task"]["id"] == task_id and claim["lease"]["holder"] == "stdio-agent"
        await client.call_tool("report_result", {"task_id": task_id, "epoch": 1, "status": "done"})

    run(loop, params)
    assert queue.get_task(open_store(db), task_id).state == "done"  # read through, nothing cached


def _serve_stdio(db: Path, parent: bool) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "swarm.cli", "serve"]
    if parent:  # an intermediate shell is the server's parent; it shares the server's stdin
        cmd = ["sh", "-c", f"{' '.join(cmd)} & echo $! ; wait"]
    return subprocess.Popen(
        cmd, env=_env(db), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_stdio_server_exits_when_stdin_closes(tmp_path: Path) -> None:
    proc = _serve_stdio(tmp_path / "lab.db", parent=False)
    time.sleep(1.0)
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=15) == 0


def test_a_stdio_server_exits_when_its_parent_dies_even_with_stdin_still_open(
    tmp_path: Path,
) -> None:
    shell = _serve_stdio(tmp_path / "lab.db", parent=True)
    assert shell.stdout is not None
    server_pid = int(shell.stdout.readline())
    time.sleep(1.5)
    shell.send_signal(signal.SIGKILL)  # the agent dies; we still hold the server's stdin open
    shell.wait()
    try:
        assert _gone(server_pid), "orphaned stdio server kept running"
    finally:
        if not _gone(server_pid, 0.1):
            os.kill(server_pid, signal.SIGKILL)


# ---------------------------------------------------------------- HTTP


def _post(url: str, token: str | None) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_http_server_refuses_requests_without_the_bearer_token(
    http_server: tuple[str, str, str],
) -> None:
    url, token, _ = http_server
    assert _post(url, None) == 401
    assert _post(url, "wrong") == 401
    assert _post(url, token) != 401


def test_the_http_server_serves_a_client_that_presents_the_token(
    http_server: tuple[str, str, str],
) -> None:
    url, token, db = http_server
    (task_id,) = add(db)

    async def main() -> None:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            claim = (await client.call_tool("claim_task", {"agent": "remote-1"})).structured_content
            assert claim["task"]["id"] == task_id

    anyio.run(main)


@pytest.mark.slow
def test_twenty_agent_processes_through_one_http_server_do_every_task_once(
    http_server: tuple[str, str, str], tmp_path: Path
) -> None:
    url, _, db = http_server
    ids = add(db, 200)
    store = open_store(db)
    tokens = [auth.issue_token(store, f"a{i}", T0).token for i in range(20)]
    logs = [tmp_path / f"agent{i}.jsonl" for i in range(20)]
    agents = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tests" / "mcp_agent.py"),
                url,
                tokens[i],
                f"a{i}",
                str(log),
            ],
            env=_env(db),
            stderr=subprocess.PIPE,
        )
        for i, log in enumerate(logs)
    ]
    for proc in agents:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()[-2000:]
    events = [
        json.loads(line) for log in logs if log.exists() for line in log.read_text().splitlines()
    ]
    assert [e for e in events if e["event"] == "error"] == []
    claims = Counter(e["task"] for e in events if e["event"] == "claimed")
    assert sorted(claims) == sorted(ids) and set(claims.values()) == {1}
    assert len([e for e in events if e["event"] == "reported"]) == 200
    assert {t.state for t in queue.list_tasks(store)} == {"done"}
    assert all(len(queue.task_results(store, i)) == 1 for i in ids)


def test_report_result_records_findings_and_verify_facts_reconciles_them(lab: Lab) -> None:
    (task_id,) = add(lab.settings.db)

    async def loop(client: Client) -> None:
        before = (
            await client.call_tool("verify_facts", {})
        ).structured_content  # the committed log, merged
        await client.call_tool("claim_task", {"agent": "a1"})
        finding = {
            "subject": "Qwen3-8B",
            "predicate": "decode_tps_single_stream",
            "value": 24.0,
            "statement": "24 tokens/s single stream",
            "scope": {"gpu": "RTX 4090", "quant": "BF16"},
            # a document supports a value only through a quote that holds it
            "evidence": [
                {
                    "kind": "doc",
                    "locator": "facts/evidence/seed_README.txt",
                    "quote": {"exact": "Dense models only, 24 GB limit"},
                }
            ],
        }
        done = await client.call_tool(
            "report_result",
            {"task_id": task_id, "epoch": 1, "status": "done", "findings": [finding]},
        )
        assert not done.is_error, done.content
        after = (await client.call_tool("verify_facts", {})).structured_content
        assert after["facts_by_status"]["verified"] == before["facts_by_status"]["verified"] + 1
        assert after["citations_by_status"]["ok"] == before["citations_by_status"]["ok"] + 1
        assert (
            after["open_conflicts"] == before["open_conflicts"] and after["conflicts"][0]["reason"]
        )

    run(loop, build_server(lab))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_build_kernel_returns_a_job_at_once_and_the_result_lands_on_the_task(lab: Lab) -> None:
    async def job(client: Client) -> None:
        started = (
            await client.call_tool("build_kernel", {"name": ["nvfp4"], "arch": ["sm_89"]})
        ).structured_content
        assert started["state"] == "running" and started["job"].startswith("kernel-")
        detail = await finished_job(client, started["job"], seconds=120)
        assert detail["task"]["state"] == "done", detail
        (result,) = detail["results"]
        (build,) = result["payload"]["builds"]
        assert build["kernel"] == "nvfp4" and build["targets"][0]["target"] == "sm_89"
        assert build["targets"][0]["functions"]

    run(job, build_server(lab))
