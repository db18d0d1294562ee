"""`swarm migrate`: a whole lab copied between SQLite and PostgreSQL, both ways, verified."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from swarm import queue
from swarm.catalog import load_catalog
from swarm.errors import Conflict
from swarm.findings import NewFinding
from swarm.models import NewTask
from swarm.store import Store, open_store
from swarm.transfer import copy_lab, tally
from tests.conftest import REPO, T0, gpu, register, run_swarm, swarm_json

LEASE = 600.0


def busy_lab(store: Store) -> str:
    """The seed catalog plus live work: a GPU lease, a report with a finding, events."""
    load_catalog(store, REPO / "tasks", T0)
    register(store, "a", gpu())
    held = queue.claim(store, "a", T0, LEASE, kinds=["deploy"])
    assert held.lease.gpu is not None
    queue.add_task(store, NewTask(kind="other", title="x"), T0)
    done = queue.claim(store, "a", T0, LEASE, kinds=["other"])
    finding = NewFinding(
        subject="m",
        predicate="single_stream_tok_s",
        value=12.5,
        statement="m decodes 12.5 tok/s single-stream",
        evidence=[{"kind": "run", "locator": "this"}],  # type: ignore[list-item]
    )
    queue.report(
        store, done.task.id, done.lease.epoch, "done", T0, {"tok_s": 12.5}, findings=[finding]
    )
    return held.task.id


def test_a_lab_goes_to_postgresql_and_back_with_every_row_and_number_kept(
    tmp_path: Path, postgres_url: str
) -> None:
    source = open_store(tmp_path / "lab.db")
    held = busy_lab(source)
    pg = open_store(postgres_url)
    there = copy_lab(source, pg)
    assert there.verified and there.rows > 600
    back = open_store(tmp_path / "back.db")
    assert copy_lab(pg, back).tables == there.tables
    assert tally(back) == tally(source)
    # the copy is a working lab: the lease, its fencing and the numbering carry on
    assert queue.get_task(pg, held).lease == queue.get_task(source, held).lease
    for store in (source, pg, back):
        queue.heartbeat(store, held, 1, T0, LEASE)
        later = queue.add_task(store, NewTask(kind="other", title="after"), T0)
        assert queue.list_tasks(store)[-1].id == later.id
        assert len(queue.task_events(store, later.id)) == 1
    counts = [{table: n for table, (n, _) in tally(s).items()} for s in (source, pg, back)]
    assert counts[0] == counts[1] == counts[2]  # (new task ids are random: checksums differ)


def test_migrating_into_a_database_that_holds_a_lab_is_refused_and_changes_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    pg = open_store(postgres_url)
    queue.add_task(pg, NewTask(kind="other", title="already here"), T0)
    before = tally(pg)
    source = open_store(tmp_path / "lab.db")
    busy_lab(source)
    with pytest.raises(Conflict, match=r"already holds a lab .*1 tasks"):
        copy_lab(source, pg)
    assert tally(pg) == before


def test_swarm_migrate_copies_from_the_command_line_and_reports_the_checksums(
    tmp_path: Path, postgres_url: str
) -> None:
    busy_lab(open_store(tmp_path / "lab.db"))
    env = {**os.environ, "SWARM_DB": str(tmp_path / "lab.db")}
    report = swarm_json(tmp_path, "migrate", "--to", postgres_url, env=env)
    assert report["verified"] and {t["table"] for t in report["tables"]} >= {"tasks", "events"}
    again = run_swarm(tmp_path, "migrate", "--to", postgres_url, "--json", env=env)
    assert (
        again.returncode == 6
        and "already holds a lab" in json.loads(again.stdout)["error"]["message"]
    )
