"""swarm/core/atomic.py and the torn-log repair: a reader never sees a partial or empty file."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from swarm.core import atomic
from swarm.core.errors import StoreUnavailable
from swarm.facts.findings import load_log, repair_log
from tests.conftest import REPO, run_swarm

FINDINGS = REPO / "facts" / "findings.jsonl"


def test_a_write_replaces_the_file_whole_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    atomic.write_text(path, "one\n")
    path.chmod(0o600)
    atomic.write_text(path, "two\n")
    assert path.read_text() == "two\n" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left


def test_a_file_written_piece_by_piece_replaces_the_old_one_only_when_its_bytes_differ(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.jsonl"
    atomic.write_text(path, "a\nb\n")
    inode = path.stat().st_ino
    same = atomic.PendingFile(path)
    same.write("a\n")
    same.write("b\n")
    assert same.commit() is False and path.stat().st_ino == inode  # left alone, not rewritten
    other = atomic.PendingFile(path)
    other.write("a\n")
    other.write("c\n")  # the same size: told apart by content
    assert other.commit() is True and path.read_text() == "a\nc\n"
    dropped = atomic.PendingFile(path)
    dropped.write("half a li")
    dropped.discard()
    assert path.read_text() == "a\nc\n" and [p.name for p in tmp_path.iterdir()] == ["log.jsonl"]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    atomic.write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic.atomic_open(path) as f:
        f.write("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old\n" and len(list(tmp_path.iterdir())) == 1


def test_a_write_into_a_folder_that_cannot_be_written_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreUnavailable, match=r"cannot write .* it was left as it was"):
        atomic.write_text(tmp_path / "file" / "x", "y")  # a parent that is a file


def test_an_exclusive_write_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    atomic.write_text(path, "first\n", perms=0o600)
    with pytest.raises(FileExistsError), atomic.atomic_open(path, exclusive=True) as f:
        f.write("second\n")
    assert path.read_text() == "first\n" and len(list(tmp_path.iterdir())) == 1


def test_concurrent_readers_never_see_a_partial_or_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "facts.json"
    atomic.write_text(path, json.dumps({"n": 0, "pad": "x" * 50_000}))
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(200):
        atomic.write_text(path, json.dumps({"n": n, "pad": "x" * 50_000}))
    done.set()
    reader.join()
    assert seen and all(json.loads(text)["pad"] for text in seen)


def test_a_torn_last_line_is_reported_with_its_number_and_repaired_by_a_command(
    tmp_path: Path,
) -> None:
    facts = tmp_path / "facts"
    facts.mkdir()
    log = facts / "findings.jsonl"
    whole = [json.loads(line) for line in FINDINGS.read_text().splitlines()[:2]]
    lines = [json.dumps(f) + "\n" for f in whole]
    log.write_text("".join(lines) + lines[0][:40])  # a write cut by a crash
    good, bad = load_log(log)
    assert len(good) == 2 and [b.id for b in bad] == ["findings.jsonl:3"]
    assert bad[0].error.startswith("torn") and "swarm facts repair" in bad[0].error
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # repair works on a repo
    proc = run_swarm(tmp_path, "facts", "repair", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["torn_line"] == 3
    assert log.read_text() == "".join(lines)
    assert (facts / "findings.jsonl.torn").read_text() == lines[0][:40] + "\n"
    assert load_log(log) == (load_log(log)[0], []) and repair_log(log) is None
