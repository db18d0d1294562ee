"""The facts pipeline end to end: seed import, committed files, CLI, triage, report findings."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.core.models import GpuInfo, NewTask
from swarm.db.store import SqliteStore, Store, open_store
from swarm.facts import findings
from swarm.facts.citations import RunRecord
from swarm.facts.findings import (
    NewFinding,
    add_findings,
    all_findings,
    load_log,
    merge_log,
    read_log,
)
from swarm.facts.reconcile import reconcile
from swarm.facts.registry import Registries
from swarm.lab import pipeline as facts
from swarm.lab.seed import seed_findings
from swarm.queue import queue
from tests.conftest import REPO, T0, facts_lab, register, run_swarm, swarm_json


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
    return facts_lab(tmp_path, db, monkeypatch)


def test_the_seed_reconciles_to_the_conflicts_a_person_must_see(lab: Path) -> None:
    store = open_store(os.environ["SWARM_DB"])
    add_findings(store, seed_findings(lab), "seed", T0)
    out = facts.run(store, lab).facts
    reasons = sorted(c.reason for c in out.conflicts)
    assert reasons.count("physically implausible") == 4
    assert reasons.count("numeric disagreement") == 4
    # TRT-LLM on the Spark: the failures row says why it failed ("... not supported"), the
    # benchmark row says nothing of serving (a row of names and numbers), its numbers were measured
    assert reasons.count("claim vs measurement") == 3
    assert reasons.count("value disagreement") == 0
    text = " ".join(c.explanation for c in out.conflicts)
    assert "Gated DeltaNet hybrid attention not supported" in text
    assert "yet its throughput was measured: decode_tps_single_stream 27.6; " in text
    for needle in (
        "RTX 5090 has 32 GB",
        "104.1% is above 100%",
        "at most 6.9 tokens/s",
        "SGLang is blocked on SM120",
        "7.1 tokens/s (1 finding, 1 origin)",
        "131 tokens/s (1 finding, 1 origin)",
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
    verify = _swarm(lab, "facts", "verify", "--json")
    assert verify.returncode == 1  # a broken citation fails it, so CI can gate on it
    checks = json.loads(verify.stdout)
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
        if f["conflict"] == tie["id"]
        and f["predicate"] == "decode_tps_single_stream"
        and f["status"] != "superseded"
    )
    assert (fact["status"], fact["value"]) == ("verified", 131.0)
    assert _ok(lab, "facts", "reconcile")["changed"] == []  # stable across re-reconciles


def test_interactive_triage_asks_a_person_for_each_open_conflict(lab: Path) -> None:
    _ok(lab, "facts", "import-seed")
    proc = _swarm(lab, "triage", "--interactive", stdin="d\nwaiting for a rerun\nq\n")
    assert proc.returncode == 0, proc.stderr
    assert "side 1:" in proc.stdout and "recorded fd_" in proc.stdout
    states = [c["state"] for c in _ok(lab, "triage", "list", "--all")["conflicts"]]
    assert states.count("deferred") == 1


def test_a_report_can_carry_findings_that_cite_the_run(store: Store, tmp_path: Path) -> None:
    gpu = GpuInfo(index=0, name="NVIDIA GeForce RTX 4090", uuid="GPU-1", memory_total_gb=24)
    register(store, "a", gpu, host="ada")
    task = queue.add_task(
        store, NewTask(kind="other", title="bench", spec={"model": "Qwen3-8B"}), T0
    )
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
    runs = facts.store_runs(store)
    ctx = facts.context(tmp_path, runs, Registries.load(REPO / "facts"))
    (check,) = facts.check_all(stored, ctx).values()
    assert (check.status, check.strength, check.origin) == ("ok", "local", "a@ada")
    elsewhere = cited.model_copy(update={"scope": {"gpu": "DGX Spark"}})
    (f,) = add_findings(store, [elsewhere], "a", T0)
    (other,) = facts.check_all([f], ctx).values()
    assert other.strength is None and "not DGX Spark" in other.message


def test_runs_jsonl_keeps_every_run_it_held_when_a_fresh_store_lacks_them(lab: Path) -> None:
    kept = RunRecord(id="res-old", status="done", task_state="done", payload={"single_tps": 9.0})
    (lab / "facts" / facts.RUNS).write_text(kept.model_dump_json() + "\n")
    facts.run(SqliteStore(lab / "fresh.db"), lab)
    assert facts.read_runs(lab / "facts" / facts.RUNS) == {"res-old": kept}


def test_a_runs_line_the_store_holds_unchanged_is_read_as_the_stores_record(
    tmp_path: Path,
) -> None:
    stored = RunRecord(id="res-1", status="done", payload={"tps": 11.0})
    changed = RunRecord(id="res-2", status="done", payload={"tps": 12.0})
    path = tmp_path / facts.RUNS
    path.write_text(facts.runs_text({"res-1": stored, "res-2": changed}))
    known = {"res-1": stored, "res-2": changed.model_copy(update={"status": "failed"})}
    kept = facts.read_runs(path, known)
    assert kept == facts.read_runs(path) and kept["res-1"] is stored  # one object, not two
    assert kept["res-2"].status == "done"  # where the store's record differs, the file's own


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


def _bad_row(store: Store) -> None:
    """A finding stored before NaN was refused at input: its value was written as null."""
    body = json.dumps({"id": "fd_badbadbadbad", "agent": "a", "observed_at": "2026-11-01T00:00:00"
                       ".000000Z", "subject": "s", "predicate": "decode_tps_single_stream",
                       "value": None, "statement": "nan", "evidence": []})  # fmt: skip
    store.write(
        lambda conn: conn.execute(
            "INSERT INTO findings (id, kind, subject, predicate, body, agent, task_id, "
            "observed_at) VALUES (?,?,?,?,?,?,?,?)",
            ("fd_badbadbadbad", "claim", "s", "decode_tps_single_stream", body, "a", None, "t"),
        )
    )


def test_a_bad_row_in_the_store_is_reported_and_never_crashes_a_reader(lab: Path) -> None:
    _ok(lab, "facts", "import-seed")
    _bad_row(open_store(os.environ["SWARM_DB"]))
    listed = _ok(lab, "finding", "ls")
    assert [b["id"] for b in listed["bad_rows"]] == ["fd_badbadbadbad"] and listed["findings"]
    verify = _swarm(lab, "facts", "verify", "--json")
    assert verify.returncode == 1 and json.loads(verify.stdout)["bad_rows"][0]["id"] == (
        "fd_badbadbadbad"
    )
    assert _ok(lab, "facts", "reconcile")["facts"] > 100
    assert _ok(lab, "triage", "list")["conflicts"]
    outcome = facts.run(open_store(os.environ["SWARM_DB"]), lab, write=False)
    assert [b.id for b in outcome.bad_rows] == ["fd_badbadbadbad"]


def test_a_pass_reads_the_store_a_page_at_a_time_and_misses_no_finding_and_no_bad_row(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ok(lab, "facts", "import-seed")
    store = open_store(os.environ["SWARM_DB"])
    _bad_row(store)
    whole = facts.run(store, lab, write=False)
    monkeypatch.setattr(findings, "PAGE", 7)  # hundreds of findings: many pages, a bad row inside
    paged = facts.run(store, lab, write=False)
    assert facts.facts_text(paged.facts) == facts.facts_text(whole.facts)
    assert paged.checks == whole.checks and [b.id for b in paged.bad_rows] == ["fd_badbadbadbad"]


def test_a_bad_line_in_the_committed_log_is_skipped_and_reported(lab: Path) -> None:
    (lab / "facts" / facts.LOG).write_text('{"id": "fd_x", "value": NaN}\nnot json\n')
    outcome = facts.run(None, lab, write=False)
    assert [b.id for b in outcome.bad_rows] == ["findings.jsonl:1", "findings.jsonl:2"]


def test_a_finding_with_an_unknown_scope_key_or_a_foreign_unit_is_refused_at_input(
    lab: Path,
) -> None:
    base = ("finding", "add", "--subject", "Qwen3-8B", "--predicate", "decode_tps_single_stream",
            "--value", "42", "--json")  # fmt: skip
    extra = _swarm(lab, *base, "--scope", "model_type_guess=MoE", "--scope", "gpu=RTX 4090")
    message = json.loads(extra.stdout)["error"]["message"]
    assert extra.returncode == 7 and "model_type_guess" in message and "arch, cuda" in message
    gib = _swarm(lab, *base, "--unit", "GiB")
    assert gib.returncode == 7 and "expected tokens/s" in json.loads(gib.stdout)["error"]["message"]
    per_min = _swarm(lab, *base, "--unit", "tokens/min", "--scope", "tp=1")
    assert per_min.returncode == 0, per_min.stdout
    assert _ok(lab, "finding", "ls")["findings"][0]["unit"] == "tokens/min"  # kept as written


@settings(max_examples=5, deadline=None)
@given(st.randoms(use_true_random=False))
def test_a_shuffled_log_rebuilds_byte_identical_verified_facts(rng: random.Random) -> None:
    findings, _ = load_log(REPO / "facts" / facts.LOG)
    rng.shuffle(findings)
    reg = Registries.load(REPO / "facts")
    _, runs = facts.all_runs(None, REPO)
    checks = facts.check_all(findings, facts.context(REPO, runs, reg))
    rebuilt = facts.facts_text(reconcile(findings, checks, reg))
    assert rebuilt == (REPO / "facts" / facts.FACTS).read_text()
