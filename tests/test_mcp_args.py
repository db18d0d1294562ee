"""Every tool argument is checked at the edge as the JSON type its schema says, through the real
SDK client: `true`, `"1"` and `1.0` are not the integer 1, `"60"` is not a number, and each
refusal names the argument, what it must be and what came, with nothing changed in the store.
The schemas a client reads are standard JSON Schema, and one set of limits serves CLI and MCP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from swarm.core.models import NewTask
from swarm.core.settings import Settings
from swarm.db.store import open_store
from swarm.mcp.server import Lab, build_server
from swarm.queue import queue
from tests.conftest import REPO, T0


@pytest.fixture
def lab(db: str, tmp_path: Path) -> Lab:
    return Lab(Settings.for_db(db, lab_dir=tmp_path, lease_seconds=600), agent="a1")


def run(target: Any, fn: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Client(target) as client:
            await fn(client)

    anyio.run(main)


# A valid value for every required argument, so that a call fails only on the argument under test.
REQUIRED = {
    "task_id": "other-000001",
    "epoch": 1,
    "status": "done",
    "kind": "other",
    "title": "t",
    "capabilities": {"host": "h"},
    "text": "x",
    "directory": "deploy",
    "endpoint": "http://127.0.0.1:9",
}
# For each JSON type, values of other types that a lax reader would quietly convert.
WRONG: dict[str, list[tuple[Any, str]]] = {
    "integer": [(True, "true, a boolean"), ("1", '"1", a string'),
                (1.0, "1.0, a number with a decimal point"), (1.5, "1.5, a fractional number")],
    "number": [(True, "true, a boolean"), ("60", '"60", a string')],
    "string": [(1, "1, an integer"), (True, "true, a boolean"), (["x"], '["x"], a list')],
    "boolean": [("true", '"true", a string'), (1, "1, an integer"), (0, "0, an integer")],
    "array": [("x", '"x", a string'), ({"a": 1}, '{"a": 1}, an object')],
    "object": [('{"host": "h"}', '"{\\"host\\": \\"h\\"}", a string'), ([], "[], a list")],
}  # fmt: skip


def _words(answer: Any) -> str:
    return str(answer.content[0].text)


def _types(prop: dict[str, Any]) -> set[str]:
    options = prop.get("anyOf", [prop])
    return {o["type"] for o in options if isinstance(o.get("type"), str)} - {"null"}


def _cases(tools: list[Any]) -> list[tuple[str, str, Any, str, dict[str, Any]]]:
    cases = []
    for tool in tools:
        schema = tool.input_schema
        for name in schema.get("required", []):
            assert name in REQUIRED, f"{tool.name}.{name}: add a valid value to REQUIRED"
        base = {n: REQUIRED[n] for n in schema.get("required", [])}
        for name, prop in schema.get("properties", {}).items():
            types = _types(prop) or {"$ref"}
            for kind in types & set(WRONG):
                for value, got in WRONG[kind]:
                    if any(_accepts(t, value) for t in types):
                        continue  # 1 is a fine number: only values no declared type takes
                    cases.append((tool.name, name, value, got, {**base, name: value}))
    return cases


def _accepts(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    if isinstance(value, int):
        return kind in {"integer", "number"}
    if isinstance(value, float):
        return kind == "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value)) == kind


def _state(lab: Lab) -> list[Any]:
    tasks = queue.list_tasks(lab.store, limit=1000)
    return [
        (queue.get_task(lab.store, t.id).model_dump(), queue.task_results(lab.store, t.id))
        for t in tasks
    ]


def test_every_argument_of_every_tool_refuses_a_value_of_the_wrong_json_type(lab: Lab) -> None:
    task = queue.add_task(lab.store, NewTask(kind="other", title="held"), T0)
    checked: set[tuple[str, str]] = set()

    async def check(client: Client) -> None:
        claim = await client.call_tool("claim_task", {})
        assert not claim.is_error
        before = _state(lab)
        cases = _cases((await client.list_tools()).tools)
        for tool, name, value, got, arguments in cases:
            answer = await client.call_tool(tool, arguments)
            words = _words(answer)
            assert answer.is_error, (tool, name, value, words)
            assert words.startswith(f"INVALID_INPUT: {name} must be "), (tool, words)
            assert words.endswith(f"(got {got})"), (tool, words)
            checked.add((tool, name))
        assert _state(lab) == before  # not a lease extended, not a task added or finished

    run(build_server(lab), check)
    # the table reached every typed argument of the surface the review found converting
    for tool, name in [("heartbeat", "epoch"), ("heartbeat", "lease_seconds"),
                       ("report_result", "epoch"), ("release_task", "epoch"),
                       ("add_task", "priority"), ("add_task", "max_attempts"),
                       ("claim_task", "lease_seconds"), ("list_tasks", "limit"),
                       ("build_kernel", "test"), ("benchmark", "tp"), ("deploy", "gpu_total_gb"),
                       ("register_agent", "capabilities"), ("search", "text")]:  # fmt: skip
        assert (tool, name) in checked
    assert queue.get_task(lab.store, task.id).state == "claimed"


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("register_agent",
         {"capabilities": {"host": "h", "gpus": [{"index": "0", "name": "g", "uuid": "u",
                                                  "memory_total_gb": 24}]}},
         'capabilities.gpus.0.index must be an integer from 0 to 1024 (got "0", a string)'),
        ("register_agent",
         {"capabilities": {"host": "h", "gpus": [{"index": 0, "name": "g", "uuid": "u",
                                                  "memory_total_gb": True}]}},
         "capabilities.gpus.0.memory_total_gb must be a number > 0 and ≤ 100000.0"
         " (got true, a boolean)"),
        ("add_task", {"kind": "other", "title": "t", "requires": {"exclusive": "yes"}},
         'requires.exclusive must be true or false (got "yes", a string)'),
        ("add_task", {"kind": "other", "title": "t", "depends_on": ["a-1", 7]},
         "depends_on.1 must be a string (got 7, an integer)"),
        ("benchmark", {"endpoint": "http://127.0.0.1:9", "concurrency": [1, 2.0]},
         "concurrency.1 must be an integer from 1 to 1024"
         " (got 2.0, a number with a decimal point)"),
        ("report_result",
         {"task_id": "other-000001", "epoch": 1, "status": "done",
          "findings": [{"subject": "s", "predicate": "p", "value": [1], "statement": "x"}]},
         "findings.0.value must be a string or an integer or a number or true or false"
         " (got [1], a list)"),
        ("list_tasks", {"state": "pending"},
         "state must be a list each one of 'pending', 'claimed', 'done', 'failed', 'cancelled'"
         ' (or null) (got "pending", a string)'),
    ],
)  # fmt: skip
def test_a_wrong_type_deep_inside_an_argument_is_named_by_its_path(
    lab: Lab, tool: str, arguments: dict[str, Any], message: str
) -> None:
    async def check(client: Client) -> None:
        answer = await client.call_tool(tool, arguments)
        assert answer.is_error and _words(answer) == f"INVALID_INPUT: {message}"

    run(build_server(lab), check)
    assert queue.list_tasks(lab.store) == []


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("search", {"text": "a\x00"}, "text must not contain a NUL byte (got 'a\\x00')"),
        ("add_task", {"kind": "other", "title": "t", "spec": {"k": ["ok", "b\x00"]}},
         "spec.k.1 must not contain a NUL byte (got 'b\\x00')"),
        ("search", {"text": "a\ud800"}, "text must be valid UTF-8 text (got 'a\\ud800')"),
        ("add_task", {"kind": "other", "title": ""},
         "title must not be empty or only whitespace (got '')"),
        ("add_task", {"kind": "other", "title": " \t\n"},
         "title must not be empty or only whitespace (got ' \\t\\n')"),
        ("add_task", {"kind": "other", "title": "t", "priority": 2**31},
         "priority must be an integer from -2147483648 to 2147483647 (got 2147483648)"),
    ],
)  # fmt: skip
def test_text_and_bounds_are_refused_alike_on_every_tool(
    lab: Lab, tool: str, arguments: dict[str, Any], message: str
) -> None:
    async def check(client: Client) -> None:
        answer = await client.call_tool(tool, arguments)
        assert answer.is_error and _words(answer) == f"INVALID_INPUT: {message}"

    run(build_server(lab), check)
    assert queue.list_tasks(lab.store) == []


def test_the_reviews_repro_over_stdio_is_refused_and_leaves_the_lease_as_it_was(
    tmp_path: Path,
) -> None:
    db = tmp_path / "lab.db"
    store = open_store(db)
    task = queue.add_task(store, NewTask(kind="other", title="fence"), T0)
    env = {**os.environ, "SWARM_DB": str(db), "PYTHONPATH": str(REPO), "SWARM_AGENT": "a1"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "swarm.cli", "serve"],
                                   env=env)  # fmt: skip

    async def check(client: Client) -> None:
        claim = (await client.call_tool("claim_task", {})).structured_content
        assert claim is not None and claim["lease"]["epoch"] == 1
        held = queue.get_task(store, task.id).model_dump()
        wrong: list[tuple[Any, str]] = [(True, "true, a boolean"), ("1", '"1", a string'),
                                        (1.0, "1.0, a number with a decimal point")]  # fmt: skip
        for epoch, got in wrong:
            answer = await client.call_tool("heartbeat", {"task_id": task.id, "epoch": epoch})
            assert answer.is_error and _words(answer) == (
                f"INVALID_INPUT: epoch must be an integer from 1 to 2147483647 (got {got})"
            )
        answer = await client.call_tool(
            "heartbeat", {"task_id": task.id, "epoch": 1, "lease_seconds": "60"}
        )
        assert answer.is_error and _words(answer).startswith(
            "INVALID_INPUT: lease_seconds must be a number > 0 and ≤ 604800.0"
        )
        assert queue.get_task(store, task.id).model_dump() == held
        nul = await client.call_tool("search", {"text": "a\x00"})
        assert nul.is_error and "NUL" in _words(nul)
        ok = await client.call_tool("heartbeat", {"task_id": task.id, "epoch": 1})
        assert not ok.is_error  # the right types still work

    run(params, check)


def test_tool_schemas_are_standard_json_schema_a_client_can_check(lab: Lab) -> None:
    validators = pytest.importorskip("jsonschema.validators")

    async def check(client: Client) -> None:
        tools = (await client.list_tools()).tools
        wire = json.dumps([t.input_schema for t in tools])
        for own in ('"gt"', '"ge"', '"lt"', '"le"'):
            assert own not in wire  # pydantic's names: no client would check them
        for tool in tools:
            cls = validators.validator_for(
                tool.input_schema, default=validators.Draft202012Validator
            )
            cls.check_schema(tool.input_schema)
        by_name = {t.name: t.input_schema for t in tools}
        lease = by_name["heartbeat"]["properties"]["lease_seconds"]
        assert lease["exclusiveMinimum"] == 0 and lease["maximum"] == 604800
        assert by_name["add_task"]["properties"]["title"]["minLength"] == 1
        # a client's own validator refuses what the server refuses
        heartbeat = validators.Draft202012Validator(by_name["heartbeat"])
        assert not heartbeat.is_valid({"task_id": "t-1", "epoch": "1"})
        assert not heartbeat.is_valid({"task_id": "t-1", "epoch": True})
        assert not heartbeat.is_valid({"task_id": "t-1", "epoch": 1, "lease_seconds": 0})
        assert heartbeat.is_valid({"task_id": "t-1", "epoch": 1, "lease_seconds": 60})

    run(build_server(lab), check)


# ---------------------------------------------------------------- one set of limits, CLI and MCP


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARM_DB": str(db), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "swarm.cli", *args], env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "other", ""], "title must not be empty or only whitespace (got '')"),
        (["add", "other", "   "], "title must not be empty or only whitespace (got '   ')"),
        (["add", "other", "t", "--priority", str(2**31)],
         "--priority must be ≤ 2147483647 (got 2147483648)"),
        (["add", "other", "t", "--priority", str(2**70)],
         "--priority must be ≤ 2147483647 (got 1180591620717411303424)"),
        (["heartbeat", "other-000001", "--epoch", str(2**40)],
         "--epoch must be ≤ 2147483647 (got 1099511627776)"),
        (["heartbeat", "other-000001", "--epoch", "0"], "--epoch must be ≥ 1 (got 0)"),
        (["heartbeat", "other-000001", "--epoch", "1", "--lease", "0"],
         "--lease must be > 0.0 (got 0.0)"),
    ],
)  # fmt: skip
def test_the_cli_refuses_with_exit_7_what_mcp_refuses_and_names_the_same_bound(
    tmp_path: Path, args: list[str], message: str
) -> None:
    db = tmp_path / "lab.db"
    open_store(db).close()
    done = _cli(db, *args)
    assert done.returncode == 7, done.stderr
    assert message in done.stderr
    assert queue.list_tasks(open_store(db)) == []
