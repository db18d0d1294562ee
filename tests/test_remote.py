"""The CLI through a remote `swarm serve --http` (--server + token), on a host with no database."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from swarm.db.store import open_store
from swarm.facts.findings import all_findings
from swarm.queue import queue
from tests.conftest import free_port, run_swarm, swarm_json
from tests.test_cli import FINDING

Server = tuple[str, str, str]


def _env(server: Server) -> dict[str, str]:
    """No database can be found: the test runs outside a repo, with no SWARM_DB."""
    url, token, _ = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    return env | {"SWARM_SERVER": url, "SWARM_TOKEN": token, "SWARM_AGENT": "gpu-box"}


def remote(tmp_path: Path, server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return run_swarm(tmp_path, *args, "--json", env=_env(server))


def ok(tmp_path: Path, server: Server, *args: str) -> Any:
    return swarm_json(tmp_path, *args, env=_env(server))


def test_a_gpu_host_registers_claims_beats_and_reports_through_the_server(
    tmp_path: Path, http_server: Server
) -> None:
    agent = ok(tmp_path, http_server, "agent", "register", "--gpu", "RTX Pro 6000:sm_120:96")
    assert agent["capabilities"]["gpus"][0]["arch"] == "sm_120"
    added = ok(
        tmp_path, http_server, "add", "other", "probe", "--arch", "sm_120", "--gpu-mem", "40"
    )
    claim = ok(tmp_path, http_server, "claim")
    task, epoch = claim["task"]["id"], claim["lease"]["epoch"]
    assert (
        task == added["id"]
        and claim["lease"]["gpu"]["gb"] == 40
        and claim["lease"]["holder"] == "gpu-box"
    )
    ok(tmp_path, http_server, "heartbeat", task, "--epoch", str(epoch))
    (tmp_path / "findings.json").write_text(json.dumps([FINDING]))
    result = ok(tmp_path, http_server, "report", task, "--epoch", str(epoch), "--status", "done",
                "--result", '{"max_abs_err": 0}', "--findings", str(tmp_path / "findings.json"))  # fmt: skip
    shown = ok(tmp_path, http_server, "show", task)
    assert shown["task"]["state"] == "done" and shown["results"][0]["id"] == result["id"]
    listed = ok(tmp_path, http_server, "ls", "--state", "done")
    assert [t["id"] for t in listed["tasks"]] == [task]
    # the same lab, read directly from the database
    store = open_store(http_server[2])
    assert queue.get_task(store, task).state == "done"
    (finding,) = all_findings(store)
    assert finding.task_id == task and finding.evidence[0].locator == result["id"]


def test_errors_through_the_server_keep_their_exit_codes(
    tmp_path: Path, http_server: Server
) -> None:
    assert remote(tmp_path, http_server, "claim").returncode == 3  # nothing claimable
    added = ok(tmp_path, http_server, "add", "other", "t")
    claim = ok(tmp_path, http_server, "claim")
    ok(tmp_path, http_server, "release", added["id"], "--epoch", str(claim["lease"]["epoch"]))
    stale = remote(tmp_path, http_server, "heartbeat", added["id"], "--epoch", "1")
    assert stale.returncode == 4 and "lease" in json.loads(stale.stdout)["error"]["message"]
    assert remote(tmp_path, http_server, "show", "nope").returncode == 5
    url, _, db = http_server
    wrong = remote(tmp_path, (url, "not-the-token", db), "ls")
    assert (
        wrong.returncode == 8
        and "refused the token" in json.loads(wrong.stdout)["error"]["message"]
    )
    gone = remote(tmp_path, (f"http://127.0.0.1:{free_port()}/mcp", "t", db), "ls")
    assert gone.returncode == 8 and "cannot reach" in json.loads(gone.stdout)["error"]["message"]
    local_only = remote(tmp_path, http_server, "status")
    assert local_only.returncode == 2 and "needs the lab database" in local_only.stdout
