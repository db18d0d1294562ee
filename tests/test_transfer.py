"""`swarm migrate`: a whole lab copied between SQLite and PostgreSQL, both ways, verified."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from swarm.core.errors import Conflict, StoreUnavailable
from swarm.core.models import NewTask
from swarm.db.store import Store, open_store
from swarm.db.transfer import copy_lab, tally
from swarm.facts.findings import NewFinding
from swarm.queue import queue
from swarm.queue.catalog import load_catalog
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


class _WrittenDuringCopy:
    """A real store that an agent writes to right after the copy took its snapshot."""

    def __init__(self, store: Store) -> None:
        self.store, self.reads = store, 0
        self.dialect, self.location = store.dialect, store.location

    def read(self, fn: Any) -> Any:
        self.reads += 1
        if self.reads == 2:  # the snapshot was the first read
            queue.add_task(self.store, NewTask(kind="other", title="late"), T0)
        return self.store.read(fn)

    def write(self, fn: Any) -> Any:
        return self.store.write(fn)

    def close(self) -> None:
        self.store.close()


def test_a_migration_refused_because_the_source_changed_leaves_the_target_empty(
    tmp_path: Path, postgres_url: str
) -> None:
    source = open_store(tmp_path / "lab.db")
    busy_lab(source)
    pg = open_store(postgres_url)
    empty = tally(pg)
    with pytest.raises(Conflict, match=r"changed while it was copied.*left as it was"):
        copy_lab(_WrittenDuringCopy(source), pg)
    assert tally(pg) == empty


def test_a_migration_that_fails_midway_leaves_the_target_as_it_was(
    tmp_path: Path, postgres_url: str
) -> None:
    """A row PostgreSQL refuses (a NUL byte SQLite took before the limits) stops the copy."""
    source = open_store(tmp_path / "lab.db")
    busy_lab(source)
    source.write(lambda c: c.execute("UPDATE tasks SET note = ? WHERE rowid = 3", ("a\x00b",)))
    pg = open_store(postgres_url)
    empty = tally(pg)
    with pytest.raises(StoreUnavailable):
        copy_lab(source, pg)
    assert tally(pg) == empty
