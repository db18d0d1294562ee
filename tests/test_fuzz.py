"""Fuzzing the edges (issue #17): random CLI argv and random spec/result/findings JSON.

Whatever comes in, `swarm` answers with an exit code from its documented table and a message,
never a traceback; with --json its output is one valid JSON document (no NaN); and the lab
database is never left half-written. Seeded (derandomized), so a failure replays; the example
counts keep both tests to a few seconds each. The CLI runs in this process (`swarm.cli.app.main`):
thousands of interpreter starts would cost minutes on CI's two cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from swarm.cli import app as cli

EXIT_CODES = set(range(9))  # `swarm --help`'s table (swarm.core.errors.exit_codes)
FUZZ = settings(
    derandomize=True,  # the same examples on every run: a failure replays
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Commands that stay inside the lab database; the ones that start servers, workers,
# containers or compilers, or write the repository's files, are exercised by their own tests.
COMMANDS = [
    ["add"],
    ["claim"],
    ["heartbeat"],
    ["release"],
    ["report"],
    ["ls"],
    ["show"],
    ["log"],
    ["status"],
    ["reap"],
    ["agent", "register"],
    ["agent", "ls"],
    ["finding", "add"],
    ["finding", "ls"],
    ["search"],
]
FLAGS = [
    "--agent", "--kind", "--lease", "--epoch", "--priority", "--arch", "--gpu", "--gpu-mem",
    "--host", "--tool", "--depends-on", "--max-attempts", "--dedupe-key", "--id", "--spec",
    "--result", "--status", "--note", "--key", "--limit", "--after", "--state", "--subject",
    "--predicate", "--value", "--unit", "--file", "--task", "--name", "--no-gpu", "--exclusive",
    "--findings", "--statement", "--scope", "--attr", "--evidence", "--json", "--token",
]  # fmt: skip
NUMBERS = [
    "0", "-1", "1", "60", "nan", "inf", "-inf", "1e400", "-60", "2147483648", "-2147483649",
    "9223372036854775808", "1" * 400, "0x10", "1.5", "", " ", "sm_120", "sm_999", "foo",
]  # fmt: skip
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from("\udcff\udc80"),
    max_size=20,
)  # argv cannot hold NUL; a lone surrogate is what non-UTF-8 argv bytes become


def _json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=10)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=12,
    )


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


JSON_TEXT = (
    _json_values().map(json.dumps)
    | st.integers(min_value=60, max_value=400).map(_deep)
    | st.sampled_from(["{", "[1,", '{"a": NaN}', '{"a": 1e400}', "@/nonexistent", "@/", "null"])
)
VALUE = st.sampled_from(NUMBERS) | TEXT | JSON_TEXT


def _subparser(path: list[str]) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _grammar(path: list[str]) -> tuple[list[argparse.Action], list[argparse.Action]]:
    """A command's positionals and options, read from the parser: fuzzing the real surface."""
    actions = [
        a
        for a in _subparser(path)._actions
        if not isinstance(a, argparse._HelpAction) and a.dest != "server"  # never the network
    ]
    return [a for a in actions if not a.option_strings], [a for a in actions if a.option_strings]


GRAMMAR = {tuple(path): _grammar(path) for path in COMMANDS}


@st.composite
def argv(draw: st.DrawFn) -> list[str]:
    path = draw(st.sampled_from(COMMANDS))
    positionals, options = GRAMMAR[tuple(path)]
    args = list(path)
    args += [draw(st.sampled_from(["t-1", "other", "x-abc"]) | VALUE) for _ in positionals]
    for option in draw(st.lists(st.sampled_from(options), max_size=5, unique_by=id)):
        args.append(option.option_strings[-1])
        if option.nargs != 0:
            args.append(draw(st.sampled_from(option.choices) if option.choices else VALUE))
    if draw(st.integers(0, 9)) == 0:  # now and then an unknown flag or a stray word
        args.append(draw(st.sampled_from(FLAGS) | TEXT))
    return args


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One lab made once (migrations, a pending and a claimed task); each example copies it."""
    folder = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWARM_DB", str(folder / "lab.db"))
        mp.setenv("SWARM_AGENT", "fuzz")
        mp.delenv("SWARM_SERVER", raising=False)
        for args in (
            ["add", "other", "seed"],
            ["add", "other", "held"],
            ["claim", "--agent", "a1"],
        ):
            assert cli.main(args) == 0
    conn = sqlite3.connect(folder / "lab.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the one file we copy
    conn.close()
    return folder / "lab.db"


def _lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: Path) -> Path:
    db = tmp_path / "lab.db"
    shutil.copyfile(template, db)
    monkeypatch.setenv("SWARM_DB", str(db))
    monkeypatch.setenv("SWARM_LAB_DIR", str(tmp_path))
    monkeypatch.setenv("SWARM_AGENT", "fuzz")
    monkeypatch.delenv("SWARM_SERVER", raising=False)
    monkeypatch.chdir(tmp_path)  # no command may touch the repository's files
    (tmp_path / "f.json").write_text('{"a": 1}')
    (tmp_path / "latin1.json").write_bytes(b'{"a": "caf\xe9"}')
    return db


def _call(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(args)
    except SystemExit as exc:  # --help and --version exit through argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _check_answer(args: list[str], code: int, out: str, err: str) -> None:
    event(f"exit {code}")  # pytest --hypothesis-show-statistics shows how deep the fuzz went
    assert code in EXIT_CODES, (args, code)
    assert "Traceback" not in out + err and "internal error" not in out + err, (args, out, err)
    if "--json" in args and "--help" not in args:
        json.loads(out, parse_constant=_no_nan)  # one document; NaN/Infinity are not JSON
    if code not in (0, 3):
        assert (out if "--json" in args else err).strip(), (args, "an error needs a message")


def _no_nan(name: str) -> None:
    raise AssertionError(f"output holds {name}, which is not JSON")


def _check_store(db: Path) -> None:
    """Nothing half-written: the file is sound and every task's rows agree with its state."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        torn = conn.execute(
            """SELECT id FROM tasks WHERE
                 (state = 'claimed') != (holder IS NOT NULL AND expires_at IS NOT NULL)
              OR (state = 'done') != EXISTS (SELECT 1 FROM results r WHERE r.task_id = tasks.id
                                             AND r.status = 'done')
              OR EXISTS (SELECT 1 FROM gpu_leases g WHERE g.task_id = tasks.id
                         AND tasks.state != 'claimed')"""
        ).fetchall()
        assert torn == []
        for (spec,) in conn.execute("SELECT spec FROM tasks"):
            json.loads(spec, parse_constant=_no_nan)
    finally:
        conn.close()


@settings(FUZZ, max_examples=150)
@given(st.lists(argv(), min_size=1, max_size=4))
def test_random_command_lines_get_a_documented_exit_code_and_never_a_traceback(
    tmp_path_factory: pytest.TempPathFactory,
    template: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    commands: list[list[str]],
) -> None:
    tmp = tmp_path_factory.mktemp("lab")
    db = _lab(tmp, monkeypatch, template)
    capsys.readouterr()
    for args in commands:
        _check_answer(args, *_call(args, capsys))
    _check_store(db)


@settings(FUZZ, max_examples=150)
@given(
    st.sampled_from(["spec", "result", "findings", "evidence"]),
    JSON_TEXT | _json_values().map(lambda v: json.dumps({"v": v})),
    st.booleans(),
)
def test_random_json_inputs_are_stored_whole_or_refused_with_exit_7(
    tmp_path_factory: pytest.TempPathFactory,
    template: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
    text: str,
    from_file: bool,
) -> None:
    tmp = tmp_path_factory.mktemp("lab")
    db = _lab(tmp, monkeypatch, template)
    source = text
    if from_file:
        (tmp / "in.json").write_text(text, encoding="utf-8", errors="surrogateescape")
        source = f"@{tmp / 'in.json'}"
    capsys.readouterr()
    task = json.loads(_call(["ls", "--json", "--state", "claimed"], capsys)[1])["tasks"][0]["id"]
    args = {
        "spec": ["add", "other", "fuzzed", "--spec", source],
        "result": ["report", task, "--epoch", "1", "--agent", "a1", "--status", "done",
                   "--result", source],
        "findings": ["report", task, "--epoch", "1", "--agent", "a1", "--status", "done",
                     "--findings", source],
        "evidence": ["finding", "add", "--subject", "s", "--predicate", "p", "--value", "1",
                     "--evidence", source],
    }[where] + ["--json"]  # fmt: skip
    code, out, err = _call(args, capsys)
    _check_answer(args, code, out, err)
    assert code in (0, 5, 6, 7), (args, out)
    _check_store(db)
    # whatever was stored renders back as JSON
    for listing in (["ls", "--json"], ["show", task, "--json"], ["finding", "ls", "--json"]):
        code, out, err = _call(listing, capsys)
        assert code == 0, (listing, out, err)
        json.loads(out, parse_constant=_no_nan)


# ---------------------------------------------------------------- MCP tool arguments

MCP_TOOLS = ("claim_task", "register_agent", "heartbeat", "report_result", "release_task",
             "list_tasks", "get_task", "add_task", "search")  # fmt: skip  # the lab's own tools


@st.composite
def tool_calls(draw: st.DrawFn, schemas: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(schemas)))
    properties = sorted(schemas[name].get("properties", {}))
    keys = draw(st.lists(st.sampled_from(properties), unique=True)) if properties else []
    args = {
        key: draw(_json_values() | st.sampled_from(["x-abc", "other", 1, 2**63, -60.0]))
        for key in keys
    }
    if draw(st.integers(0, 9)) == 0:
        args[draw(st.text(max_size=8))] = draw(_json_values())  # an unknown argument
    return name, args


def test_random_mcp_tool_arguments_get_an_answer_and_leave_the_store_sound(tmp_path: Path) -> None:
    """Through the SDK's in-memory client: every call is answered (a result or an error with a
    message), no traceback reaches the agent, and the store stays sound."""
    import anyio
    from mcp import Client

    from swarm.core.settings import Settings
    from swarm.mcp.server import Lab, build_server

    db = tmp_path / "lab.db"
    lab = Lab(Settings.for_db(str(db), lab_dir=tmp_path, lease_seconds=600))
    server = build_server(lab)
    answered: list[str] = []

    async def main() -> None:
        async with Client(server) as client:
            schemas = {
                t.name: t.input_schema
                for t in (await client.list_tools()).tools
                if t.name in MCP_TOOLS
            }

            @settings(FUZZ, max_examples=120)
            @given(tool_calls(schemas))
            def one(call: tuple[str, dict[str, Any]]) -> None:
                name, args = call
                result = anyio.from_thread.run(client.call_tool, name, args)
                text = " ".join(getattr(c, "text", "") for c in result.content)
                assert "Traceback" not in text, (name, args, text)
                assert not result.is_error or text.strip(), (name, args, "an error needs a message")
                event(f"{name}: {'error' if result.is_error else 'ok'}")
                answered.append(name)

            await anyio.to_thread.run_sync(one)

    anyio.run(main)
    assert len(answered) >= 100
    _check_store(db)
