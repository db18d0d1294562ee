"""The README dashboard: region round trips, hand-edit refusal, the seed reproduced, the mirrors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from swarm.core.errors import Conflict
from swarm.db.store import SqliteStore, open_store
from swarm.facts.findings import read_log
from swarm.facts.registry import Registries
from swarm.present import readme
from swarm.queue.catalog import load_catalog
from tests.conftest import REPO, T0, run_swarm

SEED = json.loads((REPO / "facts" / "evidence" / "lab_seed.json").read_text())


def test_regions_are_appended_once_then_replaced_in_place() -> None:
    first = readme.apply("# Lab\n\nhand-written\n", {"a": "one", "b": "two"})
    assert first.startswith("# Lab\n\nhand-written\n") and readme.DASHBOARD_HEADING in first
    assert readme.apply(first, {"a": "one", "b": "two"}) == first
    second = readme.apply(first, {"a": "ONE", "b": "two"})
    assert "ONE" in second and second.count("BEGIN GENERATED a") == 1


def test_a_region_edited_by_hand_is_refused_unless_forced() -> None:
    text = readme.apply("", {"a": "generated"})
    edited = text.replace("generated\n", "generated, then fixed by hand\n")
    with pytest.raises(Conflict, match="edited by hand: a"):
        readme.apply(edited, {"a": "generated again"})
    assert "generated again" in readme.apply(edited, {"a": "generated again"}, force=True)


def _seed_inputs(db: str) -> readme.Inputs:
    store = open_store(db)
    load_catalog(store, REPO / "tasks", T0)
    return readme.gather(
        store,
        readme.load_facts(REPO / "facts" / "verified_facts.json"),
        read_log(REPO / "facts" / "findings.jsonl"),
        Registries.load(REPO / "facts"),
        T0,
    )


def test_with_the_seed_catalog_the_dashboard_reproduces_the_seed(db: str) -> None:
    sections = readme.render(_seed_inputs(db))
    assert SEED["headline"] in sections["status"]
    for gpu, count in (("RTX Pro 6000", 46), ("DGX Spark", 41), ("RTX 4090", 22)):
        assert f"| {gpu} (" in sections["gpus"] and f"| {count} deployments |" in sections["gpus"]
    tables = sections["benchmarks"].split("### ")[2:]
    for gpu_table in tables:
        gpu, _, body = gpu_table.partition("\n")
        models = [
            line.split(" | ")[2]
            for line in body.splitlines()
            if line.startswith("| ") and "Model" not in line
        ]
        # the same rows as the seed; ordered by the facts' values, which differ from the seed's
        # figures where a figure is disputed
        assert sorted(models) == sorted(r["model"] for r in SEED["benchmarked"] if r["gpu"] == gpu)
    assert sections["working"].count("\n| ") - 1 == 14
    assert sections["failed"].count("\n| ") - 1 == 17
    assert "disputed (c_" in sections["benchmarks"] and "⚠ `c_" in sections["facts"]


FIGURE = re.compile(r"^(?P<value>-?[0-9.e+]+)(?P<pct>%?) · `(?P<id>f_[0-9a-f]+)` · (?P<status>\w+)")


def test_every_number_in_the_readme_tables_is_the_value_of_the_fact_beside_it() -> None:
    text = (REPO / "README.md").read_text()
    facts = {f.id: f for f in readme.load_facts(REPO / "facts" / "verified_facts.json").facts}
    seen = 0
    for line in text.splitlines():
        if not line.startswith("| "):
            continue
        for cell in line.strip("|").split(" | "):
            m = FIGURE.match(cell.strip())
            if m is None:
                continue
            fact = facts[m["id"]]
            assert float(m["value"]) == fact.value and m["status"] == fact.status, cell
            seen += 1
    assert seen > 50  # the benchmark, scaling and quant tables all print facts


def test_the_committed_readme_is_what_the_generator_makes_from_the_catalog_and_facts(
    db: str,
) -> None:
    committed = (REPO / "README.md").read_text()
    assert readme.apply(committed, readme.render(_seed_inputs(db))) == committed


def _git_repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    shutil.copy(REPO / ".gitignore", tmp_path / ".gitignore")
    (tmp_path / "README.md").write_text("# lab\n")
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "sync_local_docs.sh", tmp_path / "scripts")
    return tmp_path


def _sync(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "scripts/sync_local_docs.sh"], cwd=repo, capture_output=True, text=True
    )


def test_the_agent_doc_mirrors_are_ignored_symlinks_made_idempotently(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path)
    assert _sync(repo).returncode == 0
    assert _sync(repo).stdout == ""  # nothing left to do
    for doc in ("CLAUDE.md", "AGENTS.md", "AGENT.md"):
        assert os.readlink(repo / doc) == "README.md"
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
    ).stdout
    assert "CLAUDE.md" not in status and "AGENT" not in status


def test_a_real_mirror_file_that_differs_is_never_clobbered(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path)
    (repo / "CLAUDE.md").write_text("# my private notes\n")
    (repo / "AGENTS.md").write_text("# lab\n")  # same text as README: safe to replace
    proc = _sync(repo)
    assert proc.returncode == 1 and "refusing to replace CLAUDE.md" in proc.stderr
    assert (repo / "CLAUDE.md").read_text() == "# my private notes\n"
    assert os.readlink(repo / "AGENTS.md") == "README.md"


def test_a_tracked_mirror_is_reported_with_the_fix(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path)
    (repo / "AGENT.md").symlink_to("README.md")
    subprocess.run(["git", "add", "-f", "AGENT.md"], cwd=repo, check=True)
    proc = _sync(repo)
    assert proc.returncode == 1 and "git rm --cached AGENT.md" in proc.stderr


def test_no_mirror_is_tracked_in_this_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "--", "CLAUDE.md", "AGENTS.md", "AGENT.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    assert tracked == ""


def test_swarm_readme_check_fails_when_out_of_date(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    shutil.copytree(REPO / "facts", tmp_path / "facts")
    (tmp_path / "README.md").write_text("# lab\n")
    env = {**os.environ, "SWARM_DB": str(tmp_path / "lab.db")}

    def swarm(*args: str) -> int:
        return run_swarm(tmp_path, *args, env=env).returncode

    assert swarm("readme", "--check") == 1
    assert swarm("readme") == 0 and swarm("readme", "--check") == 0


def test_a_benchmarked_sweep_gets_a_deterministic_plot_linked_from_its_row(tmp_path: Path) -> None:
    from swarm.queue import queue
    from tests.conftest import gpu, register
    from tests.test_benchmark import _run
    from tools import bench_lab
    from tools.fake_openai import Script

    store = SqliteStore(tmp_path / "lab.db")
    load_catalog(store, REPO / "tasks", T0)
    waiting = queue.list_tasks(store, states=["pending"], kinds=["benchmark"])
    bench = next(t for t in waiting if t.spec.get("gpu") == "RTX 4090" and not t.blocked_by)
    register(store, "bench-agent", gpu("RTX 4090", "sm_89", 24.0))
    claim = queue.claim(store, "bench-agent", T0, 600, task_id=bench.id)
    report = _run(Script(itl_s=0.0005), concurrency=[1, 2, 4], output_len=8, requests=8)
    queue.report(store, bench.id, claim.lease.epoch, "done", T0, bench_lab.payload(report))
    (tmp_path / "facts").mkdir()
    for name in ("verified_facts.json", "findings.jsonl", "aliases.toml", "predicates.toml",
                 "hardware.toml", "seed_interpretations.toml"):  # fmt: skip
        shutil.copy(REPO / "facts" / name, tmp_path / "facts" / name)
    _, text = readme.regenerate(store, tmp_path, tmp_path / "README.md", T0)
    plot = tmp_path / readme.sweep_plot_path(bench.id)
    rows = [
        line for line in text.splitlines() if f"[sweep]({readme.sweep_plot_path(bench.id)})" in line
    ]
    assert len(rows) == 1 and f"| {bench.spec['model']} |" in rows[0]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = plot.read_bytes()
    shutil.copy(plot, "/tmp/sweep-from-readme.png") if os.environ.get("SWARM_KEEP_PLOT") else None
    plot.unlink()
    readme.regenerate(store, tmp_path, tmp_path / "README.md", T0)
    assert plot.read_bytes() == first  # the same report draws the same bytes
