from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarm.cli.app import build_parser
from tests.conftest import REPO, run_swarm, swarm_json


@pytest.fixture
def lab_env(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CLI call of a test goes to that test's lab, on each backend."""
    monkeypatch.setenv("SWARM_DB", db)
    monkeypatch.setenv("SWARM_LAB_DIR", str(tmp_path))


def _no_agent() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SWARM_AGENT"}


def swarm(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_swarm(tmp_path, *args, env=_no_agent(), stdin=stdin)


def ok(tmp_path: Path, *args: str, stdin: str | None = None) -> Any:
    return swarm_json(tmp_path, *args, env=_no_agent(), stdin=stdin)


def error(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(proc.stdout)["error"]
    assert body["exit_code"] == proc.returncode
    return body


def _commands() -> list[str]:
    parser = build_parser()
    names = []
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]  # argparse has no public walk
        for name, sub in action.choices.items():
            nested = [a for a in sub._actions if isinstance(a, type(action))]
            names += [f"{name} {n}" for a in nested for n in a.choices] if nested else [name]
    return names


def test_every_command_has_help_text_and_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = _commands()
    assert {"claim", "report", "agent register", "status"} <= set(commands)
    for name in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "swarm.cli", *name.split(), "--help"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and "exit codes" in proc.stdout, name
        assert re.search(rf"`swarm {name}\b", readme), f"README does not document `swarm {name}`"


def test_the_agent_loop_works_end_to_end_from_a_shell(tmp_path: Path, lab_env: None) -> None:
    added = ok(tmp_path, "add", "other", "probe the intrinsic", "--spec", '{"n": 1}')
    claim = ok(tmp_path, "claim", "--agent", "a1")
    task, epoch = claim["task"]["id"], str(claim["lease"]["epoch"])
    assert task == added["id"] and epoch == "1"
    assert ok(tmp_path, "heartbeat", task, "--epoch", epoch, "--agent", "a1")["epoch"] == 1
    result = ok(
        tmp_path,
        "report",
        task,
        "--epoch",
        epoch,
        "--agent",
        "a1",
        "--status",
        "done",
        "--result",
        "-",
        "--note",
        "matches",
        stdin='{"max_abs_err": 0}',
    )
    assert result["payload"] == {"max_abs_err": 0}
    shown = ok(tmp_path, "show", task)
    assert shown["task"]["state"] == "done" and shown["results"][0]["id"] == result["id"]
    actions = [e["action"] for e in ok(tmp_path, "log", task)["events"]]
    assert actions == ["added", "claimed", "reported done"]
    assert ok(tmp_path, "status")["by_state"] == {"done": 1}


FINDING = {
    "subject": "probe",
    "predicate": "max_abs_err",
    "value": 0,
    "statement": "the probe matches the reference exactly",
    "evidence": [{"kind": "run", "locator": "this", "metric": "max_abs_err"}],
}


def test_a_report_records_its_findings_citing_the_run(tmp_path: Path, lab_env: None) -> None:
    ok(tmp_path, "add", "other", "probe")
    claim = ok(tmp_path, "claim", "--agent", "a1")
    (tmp_path / "findings.json").write_text(json.dumps([FINDING]))
    task, epoch = claim["task"]["id"], str(claim["lease"]["epoch"])
    args = ["--result", '{"max_abs_err": 0}', "--findings", str(tmp_path / "findings.json")]
    result = ok(tmp_path, "report", task, "--epoch", epoch, "--agent", "a1", "--status", "done",
                *args)  # fmt: skip
    (finding,) = ok(tmp_path, "finding", "ls")["findings"]
    assert finding["task_id"] == task and finding["evidence"][0]["locator"] == result["id"]


def test_claim_exits_3_with_the_reason_when_nothing_is_claimable(
    tmp_path: Path, lab_env: None
) -> None:
    ok(tmp_path, "add", "kernel", "build", "--spec", '{"name": "k"}', "--arch", "sm_120")
    ok(tmp_path, "agent", "register", "--name", "cpu", "--no-gpu")
    proc = swarm(tmp_path, "claim", "--agent", "cpu", "--json")
    assert proc.returncode == 3
    assert error(proc)["message"] == "nothing claimable for cpu: 1 task waits for an sm_120 host"
    plain = swarm(tmp_path, "claim", "--agent", "cpu")
    assert plain.returncode == 3 and "1 task waits for an sm_120 host" in plain.stderr


def test_a_stale_epoch_exits_4_and_changes_nothing(tmp_path: Path, lab_env: None) -> None:
    ok(tmp_path, "add", "other", "t")
    task = ok(tmp_path, "claim", "--agent", "a1")["task"]["id"]
    proc = swarm(tmp_path, "report", task, "--epoch", "7", "--agent", "a1", "--status", "done",
                 "--json")  # fmt: skip
    assert proc.returncode == 4
    assert error(proc)["type"] == "LeaseLost"
    assert ok(tmp_path, "show", task)["task"]["state"] == "claimed"


def test_only_the_holder_heartbeats_reports_or_releases_from_the_cli(
    tmp_path: Path, lab_env: None
) -> None:
    """The epoch is no authority: another agent presenting the current one is refused (exit 9),
    and so is a shell that names no agent (exit 2); the task stays the holder's."""
    ok(tmp_path, "add", "other", "t")
    claim = ok(tmp_path, "claim", "--agent", "hank")
    task, epoch = claim["task"]["id"], str(claim["lease"]["epoch"])
    for verb, *rest in (("heartbeat",), ("release",), ("report", "--status", "failed")):
        proc = swarm(tmp_path, verb, task, "--epoch", epoch, "--agent", "gina", *rest, "--json")
        assert proc.returncode == 9 and error(proc)["type"] == "Forbidden", proc.stdout
        assert "held by hank" in error(proc)["message"]
        assert swarm(tmp_path, verb, task, "--epoch", epoch, *rest).returncode == 2
    assert ok(tmp_path, "show", task)["task"]["state"] == "claimed"
    assert [e["action"] for e in ok(tmp_path, "log", task)["events"]] == ["added", "claimed"]
    assert ok(tmp_path, "release", task, "--epoch", epoch, "--agent", "hank")["state"] == "pending"


def test_bad_input_gets_a_clear_error_in_the_requested_form(tmp_path: Path, lab_env: None) -> None:
    proc = swarm(tmp_path, "add", "deploy", "x", "--spec", '{"gpu": "g"}', "--json")
    assert proc.returncode == 7 and "model is required" in error(proc)["message"]
    proc = swarm(tmp_path, "add", "deploy", "x", "--spec", "{not json", "--json")
    assert proc.returncode == 7 and "spec must be valid JSON" in error(proc)["message"]
    proc = swarm(tmp_path, "show", "nope", "--json")
    assert proc.returncode == 5
    proc = swarm(tmp_path, "claim", "--json")
    assert proc.returncode == 2 and "--agent" in error(proc)["message"]
    proc = swarm(tmp_path, "frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = swarm(tmp_path, "add", "deploy", "x", "--gpu-mem", "lots")
    assert proc.returncode == 2


def test_a_duplicate_add_names_the_existing_task(tmp_path: Path, lab_env: None) -> None:
    spec = '{"gpu": "RTX 4090", "model": "Qwen3-8B", "platform": "vllm"}'
    first = ok(tmp_path, "add", "deploy", "d", "--spec", spec)
    proc = swarm(
        tmp_path, "add", "deploy", "again", "--spec", spec.replace("Qwen3-8B", "qwen3-8b"), "--json"
    )
    assert proc.returncode == 6 and first["id"] in error(proc)["message"]


def test_agent_register_uses_flags_over_detection(tmp_path: Path, lab_env: None) -> None:
    agent = ok(
        tmp_path,
        "agent",
        "register",
        "--name",
        "pro",
        "--host",
        "box1",
        "--gpu",
        "RTX Pro 6000:sm_120:96",
        "--tool",
        "docker",
    )
    caps = agent["capabilities"]
    assert caps["host"] == "box1" and caps["tools"] == ["docker"]
    assert caps["gpus"][0]["arch"] == "sm_120" and caps["gpus"][0]["memory_total_gb"] == 96
    proc = swarm(tmp_path, "agent", "register", "--name", "x", "--gpu", "RTX 4090", "--json")
    assert proc.returncode == 7 and "NAME:ARCH:GB" in error(proc)["message"]


def test_init_in_a_git_repo_puts_the_lab_in_the_common_dir_and_loads_the_catalog(
    tmp_path: Path,
) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "one.toml").write_text('[[task]]\nkind="other"\ntitle="hello"\n')
    env = {k: v for k, v in os.environ.items() if k != "SWARM_DB"}
    run = [sys.executable, "-m", "swarm.cli", "init", "--json"]
    proc = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
    out = json.loads(proc.stdout)
    assert out["db"] == str((tmp_path / ".git" / "swarm" / "swarm.db").resolve())
    assert out["added"] == 1
    again = json.loads(
        subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    )
    assert (again["added"], again["skipped"]) == (0, 1)


@pytest.mark.parametrize("command", [["ls"], ["status"], ["reap"], ["agent", "ls"]])
def test_read_commands_work_on_an_empty_lab(
    tmp_path: Path, lab_env: None, command: list[str]
) -> None:
    assert swarm(tmp_path, *command).returncode == 0
