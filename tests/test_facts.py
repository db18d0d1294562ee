"""The facts pipeline end to end: seed import, committed files, CLI, triage, report findings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from swarm import facts, queue
from swarm.findings import NewFinding, add_findings, all_findings, merge_log, read_log
from swarm.models import NewTask
from swarm.seed import seed_findings
from swarm.store import SqliteStore, Store, open_store
from tests.conftest import REPO, T0, register, run_swarm, swarm_json


def test_the_committed_verified_facts_validate_against_the_committed_schema() -> None:
    schema = json.loads((REPO / "facts" / facts.SCHEMA).read_text())
    assert (REPO / "facts" / facts.SCHEMA).read_text() == facts.schema_text()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads((REPO / "facts" / facts.FACTS).read_text()), schema)


def test_the_committed_facts_rebuild_byte_for_byte_from_the_committed_log() -> None:
    outcome = facts.run(None, REPO, write=False)
    assert facts.facts_text(outcome.facts) == (REPO / "facts" / facts.FACTS).read_text()


@pytest.fixture
def lab(tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repo's facts/ and tasks/ in a fresh git repo; its database in SWARM_DB."""
    monkeypatch.setenv("SWARM_DB", db)
    for folder in ("facts", "tasks"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    for generated in (facts.LOG, facts.FACTS, facts.RUNS):
        (tmp_path / "facts" / generated).unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def test_the_seed_reconciles_to_the_conflicts_a_person_must_see(lab: Path) -> None:
    store = open_store(os.environ["SWARM_DB"])
    add_findings(store, seed_findings(lab), "seed", T0)
    out = facts.run(store, lab).facts
    reasons = sorted(c.reason for c in out.conflicts)
    assert reasons.count("physically implausible") == 4
    assert reasons.count("claim vs measurement") == 2
    assert reasons.count("numeric disagreement") == 4
    text = " ".join(c.explanation for c in out.conflicts)
    for needle in (
        "RTX 5090 has 32 GB",
        "104.1% is above 100%",
        "at most 6.9 tokens/s",
        "SGLang is blocked on SM120",
        "7.1 tokens/s (1 finding), 21.5 tokens/s (1 finding), 131 tokens/s",
    ):
        assert needle in text
    again = facts.run(store, lab)
    assert again.changed == ()  # nothing changed: byte-identical files, nothing rewritten


def _swarm(
    lab: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_swarm(lab, *args, env={**os.environ, **env}, stdin=stdin)  # SWARM_DB: the lab's


def _ok(lab: Path, *args: str, stdin: str | None = None) -> Any:
    return swarm_json(lab, *args, stdin=stdin)


def test_findings_added_from_the_cli_are_checked_and_reconciled(lab: Path) -> None:
    (lab / "notes.md").write_text("On the Spark we measured 42.7 tokens/s single stream.\n")
    _ok(
        lab,
        "finding",
        "add",
        "--subject",
        "Qwen3-Next-80B-A3B-Instruct-FP8",
        "--predicate",
        "decode_tps_single_stream",
        "--value",
        "42.7",
        "--unit",
        "tokens/s",
        "--scope",
        "gpu=DGX Spark",
        "--scope",
        "quant=FP8",
        "--evidence",
        '{"kind": "file", "locator": "notes.md", "quote": {"exact": "42.7 tokens/s"}}',
    )
    _ok(
        lab,
        "finding",
        "add",
        "--subject",
        "x",
        "--predicate",
        "memory_gb",
        "--value",
        "96",
        "--evidence",
        '{"kind": "file", "locator": "../etc/passwd"}',
    )
    checks = _ok(lab, "facts", "verify")
    assert checks["counts"] == {"broken": 1, "ok": 1}
    assert "inside the repo" in checks["checks"][0]["message"]
    summary = _ok(lab, "facts", "reconcile")
    assert summary["facts"] == 2 and "verified_facts.json" in summary["changed"]
    assert _swarm(lab, "facts", "reconcile", "--check").returncode == 0
    written = json.loads((lab / "facts" / facts.FACTS).read_text())
    assert {f["status"] for f in written["facts"]} == {"verified", "unverifiable"}
    bad = _swarm(
        lab, "finding", "add", "--subject", "x", "--predicate", "Bad Name", "--value", "1", "--json"
    )
    assert bad.returncode == 7 and "predicate" in json.loads(bad.stdout)["error"]["message"]


def test_triage_resolve_records_a_decision_that_the_next_reconcile_applies(lab: Path) -> None:
    _ok(lab, "facts", "import-seed")
    conflicts = _ok(lab, "triage", "list")["conflicts"]
    tie = next(c for c in conflicts if "7.1 tokens/s" in c["explanation"])
    keep = next(s for s in tie["sides"] if s["value"] == 131.0)["findings"][0]
    refused = _swarm(
        lab, "triage", "resolve", tie["id"], "--accept", "fd_nope", "--reason", "x y z", "--json"
    )
    assert refused.returncode == 7
    _ok(
        lab,
        "triage",
        "resolve",
        tie["id"],
        "--accept",
        keep,
        "--reason",
        "the 131 run used the default context",
        "--by",
        "Dana",
    )
    _ok(lab, "facts", "reconcile")
    decided = next(
        c for c in _ok(lab, "triage", "list", "--all")["conflicts"] if c["id"] == tie["id"]
    )
    assert decided["state"] == "decided" and "Dana" in decided["decision"]
    written = json.loads((lab / "facts" / facts.FACTS).read_text())
    fact = next(
        f
        for f in written["facts"]
        if f["conflict"] == tie["id"] and f["predicate"] == "decode_tps_single_stream"
    )
    assert (fact["status"], fact["value"]) == ("verified", 131.0)
    assert _ok(lab, "facts", "reconcile")["changed"] == []  # stable across re-reconciles


def test_interactive_triage_asks_a_person_for_each_open_conflict(lab: Path) -> None:
    _ok(lab, "facts", "import-seed")
    proc = _swarm(
        lab, "triage", "--interactive", "--by", "Dana", stdin="d\nwaiting for a rerun\nq\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "side 1:" in proc.stdout and "recorded fd_" in proc.stdout
    states = [c["state"] for c in _ok(lab, "triage", "list", "--all")["conflicts"]]
    assert states.count("deferred") == 1


def test_a_report_can_carry_findings_that_cite_the_run(store: Store, tmp_path: Path) -> None:
    register(store, "a")
    task = queue.add_task(store, NewTask(kind="other", title="bench"), T0)
    claim = queue.claim(store, "a", T0, 60)
    finding = NewFinding(
        subject="Qwen3-8B",
        predicate="decode_tps_single_stream",
        value=95.0,
        statement="95 tok/s single stream",
        scope={"gpu": "RTX 4090"},
    )
    result = queue.report(
        store,
        task.id,
        claim.lease.epoch,
        "done",
        T0 + timedelta(seconds=1),
        {"single_tps": 95.0},
        findings=[finding],
    )
    cited = NewFinding(
        subject="Qwen3-8B",
        predicate="decode_tps_single_stream",
        value=95.0,
        statement="same",
        scope={"gpu": "RTX 4090"},
        evidence=[{"kind": "run", "locator": result.id, "metric": "single_tps"}],
    )  # type: ignore[list-item]
    add_findings(store, [cited], "a", T0)
    stored = all_findings(store)
    assert {f.task_id for f in stored} == {task.id, None}
    payloads = facts.run_payloads(store)
    checks = facts.check_all(stored, tmp_path, payloads)
    assert [c.status for c in checks.values()] == ["ok"]


def test_a_fresh_store_starts_from_the_committed_log_and_never_drops_it(lab: Path) -> None:
    shutil.copy(REPO / "facts" / facts.LOG, lab / "facts" / facts.LOG)
    committed = (lab / "facts" / facts.LOG).read_text()
    store = SqliteStore(lab / "fresh.db")
    outcome = facts.run(store, lab)
    assert (lab / "facts" / facts.LOG).read_text() == committed
    assert len(outcome.facts.facts) == len(
        json.loads((REPO / "facts" / facts.FACTS).read_text())["facts"]
    )


def test_merging_a_log_counts_only_the_findings_the_store_did_not_have(store: Store) -> None:
    log = read_log(REPO / "facts" / "findings.jsonl")
    assert merge_log(store, log[:10]) == 10
    assert merge_log(store, log) == len(log) - 10
    assert merge_log(store, log) == 0
    assert [f.id for f in all_findings(store)] == sorted(f.id for f in log)
