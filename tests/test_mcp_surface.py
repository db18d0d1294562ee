"""The MCP surface an agent cannot misuse by accident: arguments refused with the field, the rule
and the value; jobs that outlive their session; TOOL_MISSING that queues nothing; resources and
the work_loop prompt; an HTTP server that is safe to expose. Through the real SDK client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from swarm.core import paging
from swarm.core.errors import InvalidInput
from swarm.core.models import NewTask
from swarm.core.settings import Settings
from swarm.db.store import open_store
from swarm.mcp.http import security
from swarm.mcp.server import Lab, build_server
from swarm.queue import auth, jobs, queue, worker
from tests.conftest import REPO, T0, free_port

Server = tuple[str, str, str]


@pytest.fixture
def lab(db: str, tmp_path: Path) -> Lab:
    return Lab(Settings.for_db(db, lab_dir=tmp_path, lease_seconds=600), agent="a1")


def run(lab: Lab, fn: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Client(build_server(lab)) as client:
            await fn(client)

    anyio.run(main)


def text(result: Any) -> str:
    assert result.is_error, result
    return str(result.content[0].text)


# ---------------------------------------------------------------- arguments


def test_an_unknown_argument_is_refused_naming_the_nearest_valid_one(lab: Lab) -> None:
    async def check(client: Client) -> None:
        typo = await client.call_tool("claim_task", {"agnet": "a1"})
        assert text(typo) == "INVALID_INPUT: unknown argument 'agnet'; did you mean 'agent'?"
        far = await client.call_tool("get_task", {"task_id": "x-123", "zzz": 1})
        assert text(far) == "INVALID_INPUT: unknown argument 'zzz'; this tool takes task_id"

    run(lab, check)


def test_type_range_and_missing_errors_name_the_field_the_rule_and_the_value(lab: Lab) -> None:
    async def check(client: Client) -> None:
        word = await client.call_tool("heartbeat", {"task_id": "other-123", "epoch": "one"})
        assert text(word) == (
            'INVALID_INPUT: epoch must be an integer from 1 to 2147483647 (got "one", a string)'
        )
        missing = await client.call_tool("report_result", {"task_id": "other-123", "epoch": 1})
        assert text(missing) == "INVALID_INPUT: status is required (one of 'done', 'failed')"
        name = await client.call_tool("get_task", {"task_id": "bad id!"})
        assert text(name).startswith("INVALID_INPUT: task_id must be 1 to 128 characters of")
        for message in (text(word), text(missing), text(name)):
            assert "pydantic" not in message and "http" not in message

    run(lab, check)


def test_sizes_are_bounded_and_the_bound_is_named(lab: Lab) -> None:
    async def check(client: Client) -> None:
        big = {"blob": "x" * (2 * 1024 * 1024)}
        spec = await client.call_tool("add_task", {"kind": "other", "title": "t", "spec": big})
        assert text(spec).startswith("INVALID_INPUT: spec must be at most 65536 bytes as JSON")
        note = await client.call_tool(
            "release_task", {"task_id": "other-123", "epoch": 1, "note": "n" * 20_000}
        )
        assert text(note) == "INVALID_INPUT: note must be at most 16384 bytes of UTF-8 (got 20000)"
        lease = await client.call_tool(
            "heartbeat", {"task_id": "other-123", "epoch": 1, "lease_seconds": 10**9}
        )  # every bound of the argument is named, not only the one it broke
        assert text(lease) == (
            "INVALID_INPUT: lease_seconds must be a number > 0 and ≤ 604800.0 (or null)"
            " (got 1000000000)"
        )
        arch = await client.call_tool("build_kernel", {"arch": ["sm_999"]})
        assert "must be a real GPU architecture" in text(arch)

    run(lab, check)
    assert queue.list_tasks(lab.store) == []  # nothing half-written


def test_a_malformed_foreign_or_expired_cursor_is_invalid_input(lab: Lab) -> None:
    store = lab.store
    for i in range(3):
        queue.add_task(store, NewTask(kind="other", title=f"t{i}"), T0)
    stale = paging.cursor("other-x", [], [], datetime.now(UTC) - timedelta(hours=2))

    async def check(client: Client) -> None:
        first = (await client.call_tool("list_tasks", {"limit": 1})).structured_content
        page = first["next_cursor"]
        junk = await client.call_tool("list_tasks", {"cursor": "not-a-cursor"})
        assert text(junk).startswith("INVALID_INPUT: cursor must be a next_cursor list_tasks")
        other = await client.call_tool("list_tasks", {"cursor": page, "state": ["done"]})
        assert "other state/kind filters" in text(other)
        expired = await client.call_tool("list_tasks", {"cursor": stale})
        assert "cursor expired" in text(expired)

    run(lab, check)


# ---------------------------------------------------------------- jobs


def test_build_kernel_without_nvcc_is_tool_missing_and_queues_nothing(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # a host with no CUDA

    async def check(client: Client) -> None:
        missing = await client.call_tool("build_kernel", {"name": ["nvfp4"]})
        assert text(missing) == (
            "TOOL_MISSING: nvcc is not on this host's PATH; run build_kernel on a host with "
            'CUDA, or queue it with add_task(kind="kernel")'
        )

    run(lab, check)
    assert queue.list_tasks(lab.store) == []


@pytest.fixture
def slow_server() -> Iterator[int]:
    """A fake OpenAI server slow enough (50 ms a token) that a benchmark outlives a session."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.fake_openai", "--itl-s", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    yield int(proc.stdout.readline().split()[-1])
    proc.terminate()
    proc.wait(timeout=10)


def test_a_job_outlives_the_stdio_session_that_started_it_and_the_next_claim_adopts_it(
    tmp_path: Path, slow_server: int
) -> None:
    db = str(tmp_path / "lab.db")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "swarm.cli", "serve"],
        cwd=str(REPO),
        env={
            **os.environ,
            "SWARM_DB": db,
            "SWARM_LAB_DIR": str(tmp_path),
            "SWARM_AGENT": "agent-1",
            "PYTHONPATH": str(REPO),
        },
    )
    args = {"endpoint": f"http://127.0.0.1:{slow_server}", "model": "fake", "output_len": 40,
            "requests": 4}  # fmt: skip
    started: dict[str, Any] = {}

    async def start(client: Client) -> None:
        started.update((await client.call_tool("benchmark", args)).structured_content)

    async def main() -> None:
        async with Client(params) as client:
            await start(client)

    anyio.run(main)  # the session ends here, with the job still running
    store = open_store(db)
    task = queue.get_task(store, started["job"])
    folder = jobs.job_dir(tmp_path, task.id)
    assert task.state == "pending" and "keeps running" in (task.note or "")
    assert jobs.running_pid(folder) is not None or jobs.read_result(folder) is not None
    from tests.conftest import register

    register(store, "worker-2")
    cfg = worker.WorkerConfig(
        agent="worker-2", kinds=("benchmark",), repo=REPO, lab_dir=tmp_path, db=db, once=True
    )
    summary = worker.work(store, cfg, threading.Event(), lambda _line: None)
    (outcome,) = summary.ran
    assert outcome.task_id == task.id and outcome.adopted and outcome.status == "done", outcome
    (result,) = queue.task_results(store, task.id)
    assert result.agent == "worker-2" and result.payload["job"]["adopted"] is True


# ---------------------------------------------------------------- resources and the prompt


def test_resources_a_template_and_the_work_loop_prompt_are_listed_and_read(lab: Lab) -> None:
    task = queue.add_task(lab.store, NewTask(kind="other", title="t"), T0)

    async def check(client: Client) -> None:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        assert {"swarm://board", "swarm://facts", "swarm://conflicts"} <= listed
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["swarm://tasks/{task_id}"]
        one = await client.read_resource(f"swarm://tasks/{task.id}")
        assert json.loads(one.contents[0].text)["task"]["id"] == task.id
        board = await client.read_resource("swarm://board")
        assert json.loads(board.contents[0].text)["by_state"] == {"pending": 1}
        prompt = await client.get_prompt("work_loop")
        words = prompt.messages[0].content.text
        assert "a1" in words and "heartbeat" in words and "FORBIDDEN" in words

    run(lab, check)


def test_the_tools_list_stays_under_four_thousand_tokens_with_output_schemas(lab: Lab) -> None:
    bpe = pytest.importorskip("bpe_openai")

    async def check(client: Client) -> None:
        tools = await client.list_tools()
        assert all(t.output_schema for t in tools.tools)
        wire = tools.model_dump_json(by_alias=True, exclude_none=True)  # compact, as sent
        assert len(bpe.get_encoding("cl100k_base").encode(wire)) <= 4000

    run(lab, check)


# ---------------------------------------------------------------- HTTP safe to expose


def test_a_non_loopback_bind_needs_allowed_hosts_and_keeps_host_checks() -> None:
    with pytest.raises(InvalidInput, match="--allowed-host"):
        security("0.0.0.0", ())
    checks = security("0.0.0.0", ("coordinator", "gpu-box:8765"))
    assert {"coordinator", "coordinator:*", "gpu-box:8765", "127.0.0.1:*"} <= set(
        checks.allowed_hosts
    )
    assert "https://coordinator" in checks.allowed_origins


def test_the_bearer_scheme_is_case_insensitive_over_http(http_server: Server) -> None:
    url, token, _ = http_server
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
    for scheme in ("bearer", "BEARER", "Bearer", "Basic"):
        headers = {"Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream",
                   "Authorization": f"{scheme} {token}"}  # fmt: skip
        try:
            with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10):
                status = 200
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert (status == 401) == (scheme == "Basic"), (scheme, status)


def test_a_token_file_readable_by_others_stops_the_server_at_start_with_the_fix(
    tmp_path: Path,
) -> None:
    auth.operator_token(tmp_path)
    (tmp_path / "http_token").chmod(0o644)
    env = {**os.environ, "SWARM_DB": str(tmp_path / "lab.db"), "SWARM_LAB_DIR": str(tmp_path),
           "PYTHONPATH": str(REPO)}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "swarm.cli", "serve", "--http", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 7 and f"chmod 600 {tmp_path / 'http_token'}" in proc.stderr


def test_binding_beyond_loopback_without_allowed_hosts_is_refused_at_start(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "SWARM_DB": str(tmp_path / "lab.db"), "SWARM_LAB_DIR": str(tmp_path),
           "PYTHONPATH": str(REPO)}  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "swarm.cli", "serve", "--http", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 7 and "--allowed-host" in proc.stderr
    assert time.monotonic() - start < 60
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen("http://127.0.0.1:8765/mcp", timeout=1)
