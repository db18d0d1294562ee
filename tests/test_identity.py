"""Who is calling: identities derived from the connection, per-agent tokens, holder-only writes
and people's decisions, through the real SDK client over stdio and Streamable HTTP."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from swarm.core.errors import InvalidInput, NotFound
from swarm.core.models import NewTask
from swarm.db.store import open_store
from swarm.queue import agents, auth, queue
from swarm.queue.auth import Role
from tests.conftest import REPO, T0, person_env, register, run_swarm

Server = tuple[str, str, str]
DECISION = {
    "subject": "conflict-1",
    "predicate": "decision",
    "value": "accept",
    "statement": "alice (lab lead) accepts side 1",
    "kind": "decision",
    "decision": {"conflict": "conflict-1", "action": "reject", "reason": "forged", "by": "alice"},
}


def _http(url: str, token: str, work: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            await work(client)

    anyio.run(main)


def _text(result: Any) -> str:
    return str(result.content[0].text)


def _add(db: str, **fields: Any) -> str:
    store = open_store(db)
    try:
        return queue.add_task(store, NewTask(kind="other", title="t", **fields), T0).id
    finally:
        store.close()


# ---------------------------------------------------------------- the library


def test_a_token_is_shown_once_stored_hashed_and_resolves_to_its_agent(db: str) -> None:
    store = open_store(db)
    issued = auth.issue_token(store, "spark-2", T0)
    stored = store.read(lambda c: c.execute("SELECT hash FROM tokens").fetchall())
    assert [r[0] for r in stored] == [auth.hash_token(issued.token)]
    found = auth.principal_for(store, issued.token, "op-token-0123456789")
    assert found is not None and (found.name, found.role) == ("spark-2", Role.agent)
    operator = auth.principal_for(store, "op-token-0123456789", "op-token-0123456789")
    assert operator is not None and operator.role is Role.operator and operator.is_person
    assert auth.principal_for(store, "swarm_nope", "op-token-0123456789") is None


def test_a_new_token_replaces_the_old_and_a_revoked_one_stops_working(db: str) -> None:
    store = open_store(db)
    old = auth.issue_token(store, "spark-2", T0).token
    new = auth.issue_token(store, "spark-2", T0, Role.person).token
    assert auth.principal_for(store, old, None) is None
    assert [(t.name, t.role) for t in auth.list_tokens(store)] == [("spark-2", Role.person)]
    auth.revoke_token(store, "spark-2")
    assert auth.principal_for(store, new, None) is None
    with pytest.raises(NotFound):
        auth.revoke_token(store, "spark-2")
    with pytest.raises(InvalidInput, match="1-128 characters"):
        auth.issue_token(store, "bad name!", T0)


def test_the_bearer_scheme_is_case_insensitive() -> None:
    assert auth.bearer(b"bearer abc") == auth.bearer("BEARER  abc ") == "abc"
    assert auth.bearer("Basic abc") is None and auth.bearer("") is None


def test_an_operator_token_file_that_is_empty_or_readable_by_others_is_refused(
    tmp_path: Path,
) -> None:
    token, created = auth.operator_token(tmp_path)
    path = tmp_path / "http_token"
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.operator_token(tmp_path) == (token, False)
    path.chmod(0o644)
    with pytest.raises(InvalidInput, match=f"chmod 600 {path}"):
        auth.operator_token(tmp_path)
    path.write_text("")
    path.chmod(0o600)
    with pytest.raises(InvalidInput, match="no usable token"):
        auth.operator_token(tmp_path)


def test_an_intruder_cannot_heartbeat_release_or_report_and_nothing_changes(db: str) -> None:
    from swarm.core.errors import Forbidden

    store = open_store(db)
    task_id = _add(db)
    register(store, "spark-2")
    claim = queue.claim(store, "spark-2", T0, 600)
    before = queue.get_task(store, task_id)
    message = re.escape(f"{task_id} is held by spark-2 (epoch 1); you are spark-7")
    with pytest.raises(Forbidden, match=message):
        queue.heartbeat(store, task_id, 1, T0, 900, agent="spark-7")
    with pytest.raises(Forbidden, match=message):
        queue.release(store, task_id, 1, T0, None, agent="spark-7")
    with pytest.raises(Forbidden, match=message):
        queue.report(store, task_id, 1, "failed", T0, {}, agent="spark-7")
    assert queue.get_task(store, task_id) == before and queue.task_results(store, task_id) == []
    queue.report(store, task_id, claim.lease.epoch, "done", T0, {"ok": 1}, agent="spark-2")
    assert queue.get_task(store, task_id).state == "done"


def test_the_operator_forces_a_release_and_the_log_says_who_and_why(db: str) -> None:
    store = open_store(db)
    task_id = _add(db)
    register(store, "spark-2")
    queue.claim(store, "spark-2", T0, 600)
    task = queue.force_release(store, task_id, T0, "Ada <ada@lab>", "spark-2 is down")
    assert task.state == "pending" and task.lease is None
    last = queue.task_events(store, task_id)[-1]
    assert (last.actor, last.action) == ("Ada <ada@lab>", "force-released")
    assert last.detail == "held by spark-2 (epoch 1): spark-2 is down"


# ---------------------------------------------------------------- stdio


def test_a_stdio_session_without_an_agent_keeps_one_identity_and_its_gpus_route_its_claims(
    db: str, tmp_path: Path
) -> None:
    gpu_task = _add(db, requires={"arch": "sm_120", "gpu_mem_gb": 40})
    env = {k: v for k, v in os.environ.items() if k != "SWARM_AGENT"}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "swarm.cli", "serve"],
        env={**env, "SWARM_DB": db, "SWARM_LAB_DIR": str(tmp_path), "PYTHONPATH": str(REPO)},
    )
    caps = {"host": "box", "gpus": [{"index": 0, "name": "RTX Pro 6000", "uuid": "GPU-1",
                                     "arch": "sm_120", "memory_total_gb": 96}]}  # fmt: skip
    seen: set[str] = set()

    async def main() -> None:
        async with Client(params) as client:
            registered = await client.call_tool("register_agent", {"capabilities": caps})
            seen.add(registered.structured_content["id"])
            for _ in range(28):
                await client.call_tool("list_tasks", {"limit": 1})
            claim = (await client.call_tool("claim_task", {})).structured_content
            seen.add(claim["agent"])
            assert claim["claimed"] and claim["task"]["id"] == gpu_task, claim
            assert claim["lease"]["gpu"]["gpu_uuid"] == "GPU-1" and claim["note"] is None
            assert "lease" not in claim["task"]  # sent once, as `lease`

    anyio.run(main)
    (name,) = seen
    assert "@" in name
    store = open_store(db)
    assert [a.id for a in agents.list_agents(store)] == [name]  # no junk agents


def test_a_claim_by_an_identity_that_never_registered_says_so(db: str, tmp_path: Path) -> None:
    from swarm.core.settings import Settings
    from swarm.mcp.server import Lab, build_server

    _add(db)
    lab = Lab(Settings.for_db(db, lab_dir=tmp_path), agent="newcomer")

    async def main() -> None:
        async with Client(build_server(lab)) as client:
            claim = (await client.call_tool("claim_task", {})).structured_content
            assert claim["claimed"] and "never registered" in claim["note"]
            assert "register_agent" in claim["note"]
            again = (await client.call_tool("claim_task", {})).structured_content
            assert not again["claimed"] and "never registered" in again["note"]
            await client.call_tool("register_agent", {"capabilities": {"host": "box"}})
            known = (await client.call_tool("claim_task", {})).structured_content
            assert known["note"] is None
            other = await client.call_tool("claim_task", {"agent": "someone-else"})
            assert other.is_error and _text(other).startswith("FORBIDDEN: you are newcomer")

    anyio.run(main)


# ---------------------------------------------------------------- HTTP


def test_an_agent_token_is_its_identity_and_naming_another_agent_is_forbidden(
    http_server: Server,
) -> None:
    url, _, db = http_server
    _add(db)
    token = auth.issue_token(open_store(db), "spark-2", T0).token

    async def work(client: Client) -> None:
        claim = (await client.call_tool("claim_task", {})).structured_content
        assert claim["agent"] == "spark-2" and claim["lease"]["holder"] == "spark-2"
        forged = await client.call_tool("claim_task", {"agent": "spark-7"})
        assert forged.is_error and _text(forged).startswith("FORBIDDEN: you are spark-2")

    _http(url, token, work)


def test_an_intruder_over_http_is_refused_and_the_holder_still_reports(
    http_server: Server,
) -> None:
    url, _, db = http_server
    task_id = _add(db)
    store = open_store(db)
    holder = auth.issue_token(store, "spark-2", T0).token
    intruder = auth.issue_token(store, "spark-7", T0).token
    epochs: list[int] = []

    async def claim(client: Client) -> None:
        epochs.append(
            (await client.call_tool("claim_task", {})).structured_content["lease"]["epoch"]
        )

    async def intrude(client: Client) -> None:
        args = {"task_id": task_id, "epoch": epochs[0]}
        for tool, extra in (("heartbeat", {}), ("release_task", {}),
                            ("report_result", {"status": "failed"})):  # fmt: skip
            refused = await client.call_tool(tool, {**args, **extra})
            assert _text(refused) == (
                f"FORBIDDEN: {task_id} is held by spark-2 "
                f"(epoch {epochs[0]}); you are spark-7: only the holder heartbeats, releases "
                "or reports it. Claim a task of your own"
            )

    async def report(client: Client) -> None:
        done = await client.call_tool(
            "report_result", {"task_id": task_id, "epoch": epochs[0], "status": "done"}
        )
        assert not done.is_error, _text(done)

    _http(url, holder, claim)
    before = queue.get_task(store, task_id)
    _http(url, intruder, intrude)
    assert queue.get_task(store, task_id) == before
    _http(url, holder, report)
    assert queue.get_task(store, task_id).state == "done"


def test_a_decision_finding_from_an_agent_is_forbidden(http_server: Server) -> None:
    url, _, db = http_server
    task_id = _add(db)
    token = auth.issue_token(open_store(db), "spark-2", T0).token

    async def work(client: Client) -> None:
        epoch = (await client.call_tool("claim_task", {})).structured_content["lease"]["epoch"]
        refused = await client.call_tool(
            "report_result",
            {"task_id": task_id, "epoch": epoch, "status": "done", "findings": [DECISION]},
        )
        assert "FORBIDDEN: finding 'conflict-1' carries a triage decision" in _text(refused)

    _http(url, token, work)
    assert queue.get_task(open_store(db), task_id).state == "claimed"  # nothing recorded


def test_swarm_agent_token_issues_lists_and_revokes(tmp_path: Path) -> None:
    env = {**os.environ, "SWARM_DB": str(tmp_path / "lab.db")}
    issued = run_swarm(tmp_path, "agent", "token", "spark-2", "--json", env=env)
    assert issued.returncode == 0, issued.stderr
    listed = run_swarm(tmp_path, "agent", "token", "--list", env=env)
    assert "spark-2  agent" in listed.stdout and "swarm_" not in listed.stdout
    assert run_swarm(tmp_path, "agent", "token", "--revoke", "spark-2", env=env).returncode == 0
    again = run_swarm(tmp_path, "agent", "token", "--revoke", "spark-2", env=env)
    assert again.returncode == 5 and "has no token" in again.stderr


def test_the_cli_refuses_a_decision_finding_under_an_agent_identity(tmp_path: Path) -> None:
    env = {**os.environ, "SWARM_DB": str(tmp_path / "lab.db"), "SWARM_AGENT": "spark-2"}
    decision = json.dumps(DECISION)
    refused = run_swarm(tmp_path, "finding", "add", "--file", "-", env=env, stdin=decision)
    assert refused.returncode == 9 and "carries a triage decision" in refused.stderr


def test_the_operator_forces_a_release_from_the_cli_and_the_log_keeps_who_and_why(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "lab.db")
    env = {**os.environ, "SWARM_DB": db}
    task_id = _add(db)
    store = open_store(db)
    register(store, "spark-2")
    queue.claim(store, "spark-2", T0, 600)
    bare = run_swarm(tmp_path, "release", task_id, "--force", env=env)
    assert bare.returncode == 2 and "--note" in bare.stderr
    done = run_swarm(tmp_path, "release", task_id, "--force", "--note", "spark-2 died",
                     env=env | person_env("Ada", "ada@lab"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    last = queue.task_events(store, task_id)[-1]
    assert (last.actor, last.action) == ("Ada <ada@lab>", "force-released")
