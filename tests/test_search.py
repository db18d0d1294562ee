"""Search and export on both backends: the seed's failures are findable, the index follows every
write, and the lab's tables leave as JSON, CSV and newline-delimited JSON."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from pathlib import Path

import anyio
import pytest
from mcp import Client

from swarm.core.errors import InvalidInput
from swarm.core.models import NewTask
from swarm.core.settings import Settings
from swarm.db import export
from swarm.db.search import search
from swarm.db.store import Store, open_store
from swarm.facts.findings import NewFinding, add_findings
from swarm.lab.seed import seed_findings
from swarm.mcp.server import Lab, build_server
from swarm.queue import queue
from swarm.queue.catalog import load_catalog
from tests.conftest import REPO, T0, register, run_swarm, swarm_json


@pytest.fixture
def seed_lab(store: Store) -> Store:
    load_catalog(store, REPO / "tasks", T0)
    add_findings(store, seed_findings(REPO), "seed", T0)
    return store


def _finding(statement: str, subject: str = "probe") -> NewFinding:
    return NewFinding(subject=subject, predicate="statement", value=statement, statement=statement)


def test_smem_overflow_finds_the_sglang_sm120_failure_and_the_deployment_it_killed(
    seed_lab: Store,
) -> None:
    found = search(seed_lab, "SMEM overflow")
    assert found.match == "all" and found.hits
    top = found.hits[0]
    assert top.kind == "finding" and "sglang" in (top.title + top.snippet).lower()
    assert "«SMEM»" in top.snippet
    failed = queue.get_task(seed_lab, top.related[0])
    assert failed.state == "failed" and failed.spec["platform"] == "sglang"
    assert failed.requires.arch == "sm_120" and "Qwen3-Next" in failed.spec["model"]
    assert all(h.kind == "finding" for h in found.hits)  # no task or result says SMEM


def test_the_index_follows_adds_reports_and_findings(store: Store) -> None:
    register(store, "a1")
    assert search(store, "tensormap").hits == ()
    task = queue.add_task(store, NewTask(kind="other", title="probe the tensormap path"), T0)
    assert [h.id for h in search(store, "tensormap").hits] == [task.id]
    claim = queue.claim(store, "a1", T0, 60)
    payload = {"job": {"log_tail": "RuntimeError: cudaErrorIllegalInstruction at step 3"}}
    result = queue.report(store, task.id, claim.lease.epoch, "failed", T0, payload, "wgmma absent")
    by_kind = {h.kind: h for h in search(store, "wgmma").hits}
    assert by_kind["task"].id == task.id  # the task's note changed with the report
    assert by_kind["result"].id == result.id and by_kind["result"].task_id == task.id
    log = search(store, "cudaErrorIllegalInstruction", kinds=["log"]).hits
    assert [(h.kind, h.id, h.task_id) for h in log] == [("log", result.id, task.id)]
    (finding,) = add_findings(store, [_finding("tensormap prefetch hangs on sm_121")], "a1", T0)
    assert finding.id in [h.id for h in search(store, "prefetch hangs").hits]


def test_a_query_with_no_document_holding_every_word_falls_back_to_any(store: Store) -> None:
    add_findings(store, [_finding("NVFP4 GEMM tops out at 640 TFLOPS")], "a1", T0)
    found = search(store, "nvfp4 unobtainium")
    assert found.match == "any" and len(found.hits) == 1
    assert search(store, "unobtainium").hits == ()


def test_titles_rank_above_bodies_and_kinds_filter(store: Store) -> None:
    queue.add_task(store, NewTask(kind="other", title="marlin kernel"), T0)
    queue.add_task(store, NewTask(kind="other", title="other", spec={"why": "marlin"}), T0)
    add_findings(store, [_finding("marlin was slower", subject="marlin")], "a1", T0)
    hits = search(store, "marlin").hits
    assert len(hits) == 3 and hits[-1].title == "other"
    assert {h.kind for h in search(store, "marlin", kinds=["finding"]).hits} == {"finding"}


@pytest.mark.parametrize(
    "text, kinds, limit",
    [("", (), 5), ("()*", (), 5), ("x" * 501, (), 5), ("ok", ("nope",), 5), ("ok", (), 0)],
)
def test_bad_searches_are_refused_with_a_reason(
    store: Store, text: str, kinds: tuple[str, ...], limit: int
) -> None:
    with pytest.raises(InvalidInput):
        search(store, text, kinds, limit)


def test_search_syntax_in_a_query_is_taken_as_words(store: Store) -> None:
    add_findings(store, [_finding("NEAR the OR gate: AND wins")], "a1", T0)
    assert len(search(store, 'NEAR( "OR" AND* -gate').hits) == 1


def test_upgrading_a_sqlite_lab_indexes_what_it_already_held(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = open_store(path)
    queue.add_task(store, NewTask(kind="other", title="vintage title"), T0)
    add_findings(store, [_finding("vintage finding")], "a1", T0)
    store.close()
    raw = sqlite3.connect(path)  # back to the schema before 0003_search, rows kept
    for trigger in ("findings_search", "tasks_search", "tasks_search_note", "results_search"):
        raw.execute(f"DROP TRIGGER {trigger}")
    raw.executescript("DROP TABLE search_docs_fts; DROP TABLE search_docs;")
    raw.execute("DELETE FROM migrations WHERE name >= '0003_search'")  # and every later one
    raw.execute("PRAGMA user_version = 2")
    raw.commit()
    raw.close()
    assert {h.kind for h in search(open_store(path), "vintage").hits} == {"task", "finding"}


def test_export_writes_each_format_the_same_on_either_backend(seed_lab: Store) -> None:
    rows = export.read_rows(seed_lab, "tasks")
    assert rows and "rowid" not in rows[0]
    as_json = io.StringIO()
    assert export.export(seed_lab, "tasks", "json", as_json) == len(rows)
    first = json.loads(as_json.getvalue())[0]
    assert first["id"] == rows[0]["id"] and isinstance(first["spec"], dict)
    as_csv = io.StringIO()
    export.export(seed_lab, "findings", "csv", as_csv)
    parsed = list(csv.DictReader(io.StringIO(as_csv.getvalue())))
    assert len(parsed) == len(export.read_rows(seed_lab, "findings"))
    assert json.loads(parsed[0]["body"])["id"] == parsed[0]["id"]
    lines = io.StringIO()
    export.export(seed_lab, "results", "nljson", lines)
    assert all(isinstance(json.loads(x)["payload"], dict) for x in lines.getvalue().splitlines())
    events = io.StringIO()
    count = export.export(seed_lab, "events", "csv", events)
    assert events.getvalue().startswith("seq,task_id,at,actor,action,epoch,detail\n")
    assert len(list(csv.reader(io.StringIO(events.getvalue())))) == count + 1
    with pytest.raises(InvalidInput):
        export.read_rows(seed_lab, "agents")


def test_search_and_export_from_the_shell(tmp_path: Path, db: str) -> None:
    env = {**os.environ, "SWARM_DB": db}
    empty = run_swarm(tmp_path, "export", "results", "--format", "csv", env=env)
    assert empty.stdout == "id,task_id,epoch,agent,status,payload,note,idempotency_key,created_at\n"
    swarm_json(tmp_path, "add", "other", "triton SMEM overflow repro", env=env)
    found = swarm_json(tmp_path, "search", "smem overflow", "--kind", "task", env=env)
    assert found["hits"][0]["title"] == "triton SMEM overflow repro"
    out = tmp_path / "tasks.nljson"
    done = run_swarm(tmp_path, "export", "tasks", "--format", "nljson", "-o", str(out), env=env)
    assert done.returncode == 0 and "wrote 1 tasks rows" in done.stderr
    assert json.loads(out.read_text())["title"] == "triton SMEM overflow repro"
    bad = run_swarm(tmp_path, "search", "?!", "--json", env=env)
    assert bad.returncode == 7 and "at least one word" in bad.stdout


def test_agents_search_through_the_mcp_tool(seed_lab: Store, db: str, tmp_path: Path) -> None:
    lab = Lab(Settings.for_db(db, lab_dir=tmp_path, lease_seconds=600))

    async def main() -> None:
        async with Client(build_server(lab)) as client:
            found = await client.call_tool("search", {"text": "SMEM overflow", "limit": 2})
            hits = found.structured_content["hits"]
            assert len(hits) == 2 and hits[0]["related"]
            bad = await client.call_tool("search", {"text": "!!"})
            assert bad.is_error and "INVALID_INPUT" in bad.content[0].text  # type: ignore[union-attr]

    anyio.run(main)
