"""A full disk (issue #17): the lab and its repository on a small tmpfs, filled to the last byte
while reports, the README and facts/ are written. Every command exits 8 with a message, leaves
every file as it was, and works again once space is freed.

Mounting needs root (CI runs as root); elsewhere the test skips and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_swarm

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); CI runs as root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the disk has no byte left; returns it (delete it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):  # down to the last byte
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def _swarm(repo: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    proc = run_swarm(repo, *args, "--json", env=env)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _snapshot(repo: Path) -> dict[str, bytes]:
    files = [repo / "README.md", *sorted((repo / "facts").glob("*"))]
    return {str(p.relative_to(repo)): p.read_bytes() for p in files if p.is_file()}


def test_a_full_disk_fails_writes_with_exit_8_tears_nothing_and_recovers(small_disk: Path) -> None:
    repo = small_disk / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(REPO / "README.md", repo / "README.md")
    shutil.copytree(REPO / "facts", repo / "facts")
    env = {
        **os.environ,
        "SWARM_DB": str(small_disk / "lab" / "lab.db"),
        "SWARM_LAB_DIR": str(small_disk / "lab"),
        "SWARM_AGENT": "a1",
    }
    env.pop("SWARM_SERVER", None)
    assert _swarm(repo, env, "add", "other", "work")[0] == 0
    code, claim = _swarm(repo, env, "claim")
    assert code == 0
    task, epoch = claim["task"]["id"], str(claim["lease"]["epoch"])
    big = f"@{small_disk.parent / 'big.json'}"  # kept off the small disk
    Path(big[1:]).write_text(json.dumps({"log": "x" * 900_000}))  # more than the WAL holds
    facts = repo / "facts" / "verified_facts.json"
    facts.write_text(json.dumps(json.loads(facts.read_text())))  # same facts, not byte-stable
    before = _snapshot(repo)

    # A connection held open, as a running server or worker holds one: SQLite keeps its WAL
    # index, so reads still work on the full disk and only writes fail.
    held = sqlite3.connect(small_disk / "lab" / "lab.db")
    held.execute("SELECT count(*) FROM tasks").fetchone()
    filler = _fill(small_disk)
    answers = {
        "report": _swarm(repo, env, "report", task, "--epoch", epoch, "--status", "done",
                         "--result", big),
        "readme": _swarm(repo, env, "readme", "--force"),
        "reconcile": _swarm(repo, env, "facts", "reconcile"),
        "reconcile --from-log": _swarm(repo, env, "facts", "reconcile", "--from-log"),
    }  # fmt: skip
    for name, (code, body) in answers.items():
        assert code == 8, (name, body)
        message = body["error"]["message"]
        assert body["error"]["exit_code"] == 8 and "disk is full" in message, name
        print(f"\ndisk full, {name}: exit 8: {message}")  # pytest -s
    assert _snapshot(repo) == before, "README.md and facts/ are exactly as they were"
    assert not list(repo.glob("**/.*.tmp")), "no temp file left behind"
    held.close()
    filler.unlink()  # space again: the store is sound, nothing was half-done, commands work
    with sqlite3.connect(small_disk / "lab" / "lab.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert (
            conn.execute("SELECT state FROM tasks WHERE id = ?", (task,)).fetchone()[0] == "claimed"
        )

    assert (
        _swarm(repo, env, "report", task, "--epoch", epoch, "--status", "done", "--result", big)[0]
        == 0
    )
    assert _swarm(repo, env, "readme", "--force")[0] == 0
    assert _swarm(repo, env, "facts", "reconcile")[0] == 0
    readme = (repo / "README.md").read_text()
    assert readme.count("<!-- BEGIN GENERATED") == before["README.md"].decode().count(
        "<!-- BEGIN GENERATED"
    )
    json.loads((repo / "facts" / "verified_facts.json").read_text())
