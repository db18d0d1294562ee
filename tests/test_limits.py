"""swarm/core/limits.py: one place decides every input limit, and both backends keep to it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from swarm.core import limits
from swarm.core.errors import InvalidInput, NothingClaimable
from swarm.core.models import NewTask
from swarm.db.store import Store
from swarm.queue import queue
from tests.conftest import T0, register, run_swarm


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("tp", "value", "message"),
    [
        (limits.Name, "a b", "agent must be 1 to 128 characters of A-Za-z0-9._@:- (got 'a b')"),
        (limits.Name, "x" * 129, "agent must be 1 to 128 characters"),
        (limits.Name, "\udcff", "agent must be valid UTF-8 text (got '\\udcff')"),
        (limits.Name, "a\x00", "agent must not contain a NUL byte"),
        (limits.Int32, 2**31, "agent must be ≤ 2147483647 (got 2147483648)"),
        (limits.Arch, "foo", "agent must be a real GPU architecture sm_XY[a|f]"),
        (limits.Arch, "sm_210", "agent must be a real GPU architecture"),
        (limits.LeaseSeconds, float("inf"), "agent must be a finite number (got inf)"),
        (limits.LeaseSeconds, -60, "agent must be > 0.0 (got -60)"),
        (limits.LeaseSeconds, limits.MAX_LEASE_SECONDS + 1, "agent must be ≤ 604800"),
        (limits.GigaBytes, 0, "agent must be > 0"),
        (limits.Spec, {"a": [1, float("nan")]}, "agent.a.1 must be a finite number"),
        (limits.Spec, {"a": 2**63}, "agent.a must be an integer from"),
        (limits.Spec, {"k\x00": 1}, "agent.k\x00 must not contain a NUL byte"),
        (limits.Spec, {"a": "x" * limits.MAX_SPEC_BYTES}, "agent must be at most 65536 bytes"),
        (limits.Spec, _deep(65), "agent must be nested at most 64 deep"),
        (limits.Note, "x" * (limits.MAX_NOTE_BYTES + 1), "agent must be at most 16384 bytes"),
        (limits.Scalar, float("-inf"), "agent must be a finite number"),
    ],
)
def test_each_limit_is_refused_naming_the_field_the_bound_and_the_value(
    tp: Any, value: Any, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        limits.check(tp, value, "agent")
    assert str(refused.value).startswith(message)


def test_values_at_the_limits_are_accepted() -> None:
    assert limits.check(limits.Arch, "SM120a", "arch") == "sm_120a"
    assert limits.check(limits.Int32, -(2**31), "priority") == -(2**31)
    assert limits.check(limits.Spec, _deep(64), "spec") == _deep(64)
    assert limits.check(limits.Name, "spark-2@host:x_y.z", "agent") == "spark-2@host:x_y.z"
    assert limits.check(limits.Scalar, True, "value") is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": NaN}', "spec must be valid JSON (NaN is not a JSON number"),
        ('{"a": -Infinity}', "spec must be valid JSON (-Infinity is not a JSON number"),
        ('{"a": 1e400}', "spec.a must be a finite number"),
        ("[" * 5000 + "]" * 5000, "spec must be nested at most 64 deep"),
        ("9" * 5000, "spec must be valid JSON (Exceeds the limit"),
        ("{not json", "spec must be valid JSON (Expecting property name"),
        ('"' + "x" * limits.MAX_SPEC_BYTES + '"', "spec must be at most 65536 bytes as JSON"),
    ],
)
def test_json_text_is_parsed_under_the_limits(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        limits.parse_json(text, "spec", limits.MAX_SPEC_BYTES)
    assert str(refused.value).startswith(message)


def test_both_backends_refuse_the_same_out_of_range_values(store: Store) -> None:
    register(store, "a1")
    for bad in (
        {"priority": 2**31},
        {"title": "nul\x00"},
        {"kind": "other\x00"},
        {"spec": {"x": float("nan")}},
    ):
        with pytest.raises(ValueError):  # pydantic's ValidationError: the edges word it
            NewTask(**{"kind": "other", "title": "t", **bad})
    queue.add_task(store, NewTask(kind="other", title="t", priority=2**31 - 1), T0)
    for call in (
        lambda: queue.claim(store, "a1", T0, -60),
        lambda: queue.claim(store, "a1", T0, float("nan")),
        lambda: queue.heartbeat(store, "other-x", 2**63, T0, 60),
        lambda: queue.get_task(store, "x\x00"),
        lambda: queue.list_tasks(store, limit=0),
        lambda: queue.report(store, "other-x", 1, "done", T0, {"v": float("inf")}),
    ):
        with pytest.raises(InvalidInput):
            call()
    claim = queue.claim(store, "a1", T0, 60)
    assert claim.task.priority == 2**31 - 1


def test_a_stored_task_that_cannot_be_delivered_is_failed_not_handed_out(store: Store) -> None:
    """A spec stored before the limits (300 deep) is never claimed and then lost."""
    register(store, "a1")
    bad = queue.add_task(store, NewTask(kind="other", title="deep", priority=5), T0)
    good = queue.add_task(store, NewTask(kind="other", title="fine"), T0)
    store.write(
        lambda c: c.execute(
            "UPDATE tasks SET spec = ? WHERE id = ?", (json.dumps(_deep(300)), bad.id)
        )
    )
    claim = queue.claim(store, "a1", T0, 60)
    assert claim.task.id == good.id
    failed = store.read(
        lambda c: c.execute("SELECT state, note FROM tasks WHERE id = ?", (bad.id,)).fetchone()
    )
    assert failed[0] == "failed" and "cannot be delivered" in failed[1] and "64 deep" in failed[1]
    with pytest.raises(NothingClaimable):
        queue.claim(store, "a1", T0, 60)
    with pytest.raises(InvalidInput, match=rf"task {bad.id} as stored breaks the input limits"):
        queue.list_tasks(store)  # a reader names the row instead of crashing on it


def test_json_output_never_holds_nan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN stored before the limits (SQLite took it) is null in --json output."""
    monkeypatch.setenv("SWARM_DB", str(tmp_path / "lab.db"))
    assert run_swarm(tmp_path, "add", "other", "t", "--id", "old-one").returncode == 0
    with sqlite3.connect(tmp_path / "lab.db") as conn:
        conn.execute("UPDATE tasks SET requires = ? WHERE id = 'old-one'", ('{"gpu_mem_gb": NaN}',))
    for args in (("ls", "--json"), ("show", "old-one", "--json")):
        proc = run_swarm(tmp_path, *args)
        assert json.loads(proc.stdout, parse_constant=_not_json), args


def _not_json(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


SMOKE = [
    ("add", "other", "t", "--arch", "foo"),
    ("ls", "--limit", "0"),
    ("heartbeat", "x-abc", "--epoch", "1", "--lease", "inf"),
    ("claim", "--agent", "a1", "--lease", "-60"),
    ("add", "other", "t", "--priority", "9223372036854775808"),
    ("finding", "add", "--file", "/nonexistent"),
    (
        "finding",
        "add",
        "--subject",
        "s",
        "--predicate",
        "decode_tps_single_stream",
        "--value",
        "nan",
    ),
    ("finding", "add", "--subject", "s", "--predicate", "p", "--value", "1e400"),
    ("add", "other", "\udcff"),
    ("add", "other", "t", "--spec", "@DEEP"),
    ("add", "other", "t", "--spec", "@LATIN1"),
    ("report", "x-abc", "--epoch", "1", "--status", "done", "--result", '{"a": NaN}'),
]


@pytest.mark.parametrize("args", SMOKE, ids=lambda a: " ".join(a)[:40])
def test_bad_input_exits_7_with_a_message_and_json_on_request(
    args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "deep.json").write_text(json.dumps(_deep(300)))
    (tmp_path / "latin1.json").write_bytes(b'{"a": "caf\xe9"}')
    args = tuple(
        a.replace("@DEEP", f"@{tmp_path}/deep.json").replace("@LATIN1", f"@{tmp_path}/latin1.json")
        for a in args
    )
    monkeypatch.setenv("SWARM_DB", str(tmp_path / "lab.db"))
    text = run_swarm(tmp_path, *args)
    assert text.returncode == 7, text.stderr
    assert text.stderr.startswith("swarm: ") and "Traceback" not in text.stderr
    as_json = run_swarm(tmp_path, *args, "--json")
    error = json.loads(as_json.stdout)["error"]
    assert as_json.returncode == error["exit_code"] == 7 and error["type"] == "InvalidInput"
    assert run_swarm(tmp_path, "ls", "--json").stdout.count('"id"') == 0  # nothing was added


def test_a_bad_environment_setting_is_invalid_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_DB", str(tmp_path / "lab.db"))
    for value in ("nan", "-5", "soon", "1e400"):
        monkeypatch.setenv("SWARM_LEASE_SECONDS", value)
        proc = run_swarm(tmp_path, "claim", "--agent", "a1")
        assert proc.returncode == 7 and "SWARM_LEASE_SECONDS must be" in proc.stderr
