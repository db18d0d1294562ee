"""The adversarial review of #16 replayed against a scratch lab, on both store backends: each
finding that once verified a figure by what it said about itself must now support nothing (or
be flagged for a person), as the checker derives it from real runs, files, commits and reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from swarm.core.models import NewTask
from swarm.db.store import Store, open_store
from swarm.facts.findings import Evidence, NewFinding, add_findings, all_findings, merge_log
from swarm.lab import pipeline as facts
from swarm.queue import queue
from tests.conftest import T0, facts_lab, git, gpu, register, run_swarm

SPARK = {"gpu": "DGX Spark", "arch": "sm_121", "platform": "vllm", "quant": "NVFP4", "tp": 1}
GB10 = gpu("NVIDIA GB10", "sm_121", 128.0)


@pytest.fixture
def lab(tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    facts_lab(tmp_path, db, monkeypatch)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "lab"\n')
    (tmp_path / "notes.md").write_text("Qwen3-14B on the Spark: fast enough for chat.\n")
    (tmp_path / "README.md").write_text("Qwen3-14B-NVFP4 decodes at 16.0 tokens/s on the Spark.\n")
    git("add", "-A", cwd=tmp_path)
    git("commit", "-qm", "lab", cwd=tmp_path)
    return tmp_path


def _claim(subject: str, value: Any, *evidence: dict[str, Any], **scope: Any) -> NewFinding:
    return NewFinding(
        subject=subject,
        predicate="decode_tps_single_stream",
        scope=scope or SPARK,
        value=value,
        unit="tokens/s",
        statement=f"{subject}: {value} tokens/s",
        evidence=tuple(Evidence.model_validate(e) for e in evidence),
    )


def _run(
    store: Store, agent: str, value: float, status: str = "done", at: int = 1, **spec: Any
) -> None:
    """agent runs a task and reports single_tps = value with a finding citing that run."""
    now = T0 + timedelta(minutes=at)
    subject = spec.get("claim", f"m-{agent}-{at}")
    spec = {"model": subject, **spec}  # the task measured the model the finding is about
    task = queue.add_task(store, NewTask(kind="other", title=f"bench {agent}", spec=spec), now)
    lease = queue.claim(store, agent, now, 600, task_id=task.id).lease
    found = _claim(subject, value, {"kind": "run", "locator": "this", "metric": "single_tps"})
    queue.report(store, task.id, lease.epoch, status, now, {"single_tps": value},  # type: ignore[arg-type]
                 findings=[found])  # fmt: skip


def _facts(lab: Path) -> dict[str, Any]:
    """The current fact of each subject (superseded values are under 'SUBJECT superseded')."""
    out = facts.run(open_store(os.environ["SWARM_DB"]), lab)
    return {f.subject + (" superseded" if f.status == "superseded" else ""): f
            for f in out.facts.facts}  # fmt: skip


def test_nothing_a_finding_says_about_itself_verifies_a_figure(lab: Path, db: str) -> None:
    store = open_store(db)
    register(store, "spark-1", GB10, host="spark")
    register(store, "cpu-1", host="laptop")  # registered, with no GPU
    head = git("rev-parse", "HEAD", cwd=lab)
    (lab / "evidence").mkdir()
    (lab / "evidence" / "probe.log").write_text("test_decode PASSED\n")
    said = [
        _claim("file-no-quote", 16.0, {"kind": "file", "locator": "pyproject.toml"}),
        _claim("any-commit", 16.0, {"kind": "commit", "locator": head}),
        _claim("quote-without-value", 16.0,
               {"kind": "file", "locator": "notes.md", "quote": {"exact": "fast enough"}}),
        _claim("declared-test", 16.0, {"kind": "test", "locator": "tests/t.py::test_decode",
               "outcome": "passed", "snapshot": "evidence/probe.log"}),
        _claim("tier-local-url", 16.0, {"kind": "url", "locator": "https://example.com/x",
               "snapshot": "README.md", "tier": "local", "quote": {"exact": "16.0 tokens/s"}}),
    ]  # fmt: skip
    add_findings(store, said, "someone", T0)
    _run(store, "spark-1", 16.0, status="failed", claim="failed-run")
    _run(store, "cpu-1", 16.0, claim="gpu-less-host")
    _run(store, "spark-1", 16.0, at=2, claim="other-model", model="Llama-3.3-70B-Instruct")
    now = T0 + timedelta(minutes=3)
    task = queue.add_task(store, NewTask(kind="other", title="no metric"), now)
    lease = queue.claim(store, "spark-1", now, 600, task_id=task.id).lease
    bare = _claim("run-no-metric", 16.0, {"kind": "run", "locator": "this"})
    queue.report(store, task.id, lease.epoch, "done", now, {"single_tps": 16.0}, findings=[bare])
    found = _facts(lab)
    for subject in ("file-no-quote", "any-commit", "quote-without-value", "declared-test",
                    "failed-run", "gpu-less-host", "other-model", "run-no-metric"):  # fmt: skip
        fact = found[subject.lower()] if subject.lower() in found else found[subject]
        assert fact.status == "unverifiable", (subject, fact.status, fact.evidence)
    url = found["tier-local-url"]
    assert url.status == "verified" and [e.strength for e in url.evidence] == ["primary"]
    verify = run_swarm(lab, "facts", "verify", "--json")
    assert verify.returncode in (0, 1), verify.stderr
    assert '"strength": "local"' not in verify.stdout  # none of these is a local run


def test_three_agreeing_local_runs_outvote_one_newer_run(lab: Path, db: str) -> None:
    store = open_store(db)
    for i, value in enumerate((11.2, 11.0, 10.9, 16.0)):
        register(store, f"spark-{i}", GB10, host=f"spark-{i}")
        _run(store, f"spark-{i}", value, at=i + 1, claim="Qwen3-14B-NVFP4")
    fact = _facts(lab)["qwen3-14b-nvfp4"]
    assert fact.status == "verified" and fact.value in (10.9, 11.0, 11.2)
    assert fact.independent_origins == 3 and "independent" in fact.decided_by
    loser = _facts(lab)["qwen3-14b-nvfp4 superseded"]
    assert loser.value == 16.0 and loser.superseded_by == fact.id


def test_a_tp_beyond_one_host_and_a_gib_figure_written_as_gb_are_questions_for_a_person(
    lab: Path, db: str
) -> None:
    store = open_store(db)
    add = [
        _claim("Qwen3-8B", 900.0, {"kind": "file", "locator": "README.md",
               "quote": {"exact": "16.0 tokens/s"}}, **{**SPARK, "tp": 4}),
        NewFinding(subject="H100", predicate="memory_gb", value=74.5, unit="GB",
                   statement="H100 has 74.5 GB", evidence=()),
    ]  # fmt: skip
    add_findings(store, add, "someone", T0)
    out = facts.run(store, lab).facts
    text = " ".join(c.explanation for c in out.conflicts)
    assert "TP 4 on DGX Spark" in text and "a host holds at most 1" in text
    assert "74.5 is its memory counted in GiB" in text


def test_a_test_citation_is_judged_by_the_junit_report_pytest_wrote(lab: Path, db: str) -> None:
    (lab / "tests").mkdir()
    (lab / "tests" / "test_e4m3.py").write_text(
        "def test_passing_matches(): pass\ndef test_failing_mismatches(): assert 1 == 2\n"
    )
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_e4m3.py",
         "--junitxml=evidence/results/e4m3.xml"],
        cwd=lab, capture_output=True, check=False,
    )  # fmt: skip
    git("add", "evidence/results/e4m3.xml", cwd=lab)  # a report counts once in the lab's repo
    store = open_store(db)

    def cite(subject: str, test: str, outcome: str) -> NewFinding:
        return NewFinding(
            subject=subject,
            predicate="matches_software_e4m3",
            scope={"arch": "sm_121"},
            value=True,
            statement=f"{subject} matches",
            evidence=(Evidence(kind="test", locator=f"tests/test_e4m3.py::{test}",
                               outcome=outcome, snapshot="evidence/results/e4m3.xml"),),  # type: ignore[arg-type]
        )  # fmt: skip

    # each case is named after the subject it is about (else a pass proves nothing about it)
    add_findings(store, [cite("passing", "test_passing_matches", "failed"),
                         cite("failing", "test_failing_mismatches", "passed"),
                         cite("absent", "test_absent", "passed")], "device-1", T0)  # fmt: skip
    found = {f.subject: f for f in facts.run(store, lab).facts.facts}
    assert found["passing"].status == "verified"  # the report says it passed, whatever declared
    assert found["failing"].status == "unverifiable"
    assert found["absent"].status == "unverifiable"
    verify = run_swarm(lab, "facts", "verify")
    assert verify.returncode == 1 and "holds no test case 'test_absent'" in verify.stdout


@pytest.mark.parametrize(
    ("predicate", "value", "unit", "says"),
    [
        ("decode_tps_single_stream", "fast", None, "takes a number"),
        ("decode_tps_single_stream", "true", None, "takes a number"),
        ("serves", "1", None, "takes true or false"),
        ("serves", "yes", None, "takes true or false"),
        ("statement", "true", None, "takes text"),
        ("serves", "true", "GB", "takes no unit"),
    ],
)
def test_a_value_of_another_type_than_its_predicate_is_refused_at_input(
    lab: Path, predicate: str, value: str, unit: str | None, says: str
) -> None:
    args = ["finding", "add", "--subject", "vllm", "--predicate", predicate, "--value", value,
            "--statement", "s", "--json", *(["--unit", unit] if unit else [])]  # fmt: skip
    proc = run_swarm(lab, *args)
    assert proc.returncode == 7 and says in proc.stdout, proc.stdout
    assert run_swarm(lab, "finding", "add", "--subject", "s", "--predicate", "my_own_note",
                     "--value", value, "--statement", "s").returncode == 0  # fmt: skip


@pytest.mark.parametrize(
    ("spelt", "meant"),
    [
        ("decode_tps_singlestream", "decode_tps_single_stream"),
        ("decode_tps_single_steam", "decode_tps_single_stream"),
        ("serve", "serves"),
        ("memorygb", "memory_gb"),
    ],
)
def test_a_near_miss_of_a_registered_predicate_is_refused_naming_it(
    lab: Path, spelt: str, meant: str
) -> None:
    """A misspelt predicate would be a fact of its own, verified alone beside the real one."""
    proc = run_swarm(lab, "finding", "add", "--subject", "Qwen3-14B", "--predicate", spelt,
                     "--value", "12", "--statement", "s", "--json")  # fmt: skip
    assert proc.returncode == 7 and f"did you mean {meant!r}" in proc.stdout, proc.stdout


def test_a_scope_given_on_the_command_line_keeps_its_text(lab: Path) -> None:
    """CUDA 12.10 is not the number 12.1: scope values reach their normalisers as written."""
    proc = run_swarm(lab, "finding", "add", "--subject", "Qwen3-14B", "--predicate",
                     "decode_tps_single_stream", "--value", "12", "--unit", "tokens/s",
                     "--scope", "cuda=12.10", "--scope", "tp=2", "--statement", "s", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    (finding,) = json.loads(proc.stdout)["findings"]
    assert finding["scope"] == {"cuda": "12.10", "tp": "2"} and finding["value"] == 12


@pytest.mark.parametrize(
    ("value", "says"),
    [("fast", "'fast' is not a number"), (-5.0, "must be above 0 tokens/s")],
)
def test_a_stored_value_of_another_type_or_out_of_range_is_a_question_for_a_person(
    lab: Path, db: str, value: Any, says: str
) -> None:
    """Written before the type check and the ranges existed (or merged from another clone's
    log): a conflict explaining it, never a crash of reconcile or triage."""
    store = open_store(db)
    good = _claim("Qwen3-8B", 16.0, {"kind": "file", "locator": "README.md",
                  "quote": {"exact": "16.0 tokens/s"}})  # fmt: skip
    (stored,) = add_findings(store, [good], "someone", T0)
    odd = stored.model_copy(update={"id": "fd_0123456789ab", "value": value, "agent": "old"})
    merge_log(store, [odd])
    out = facts.run(store, lab).facts
    (conflict,) = [c for c in out.conflicts if "fd_0123456789ab" in str(c.sides)]
    assert says in conflict.explanation
    assert run_swarm(lab, "triage", "list").returncode == 0


@pytest.mark.parametrize(
    ("predicate", "value", "says"),
    [
        ("decode_tps_single_stream", "-5", "must be above 0 tokens/s"),
        ("decode_tps_single_stream", "0", "must be above 0 tokens/s"),
        ("decode_tps_single_stream", "1e-400", "must be above 0 tokens/s"),  # read as 0
        ("throughput_tps_batched", "-0.5", "must be above 0 tokens/s"),
        ("scaling_efficiency_pct", "-1", "must be at least 0 %"),
        ("ttft_median_ms", "0", "must be above 0 ms"),
    ],
)
def test_a_value_outside_its_predicates_range_is_refused_at_input_naming_the_range(
    lab: Path, predicate: str, value: str, says: str
) -> None:
    proc = run_swarm(lab, "finding", "add", "--subject", "Qwen3-8B", "--predicate", predicate,
                     f"--value={value}", "--statement", "s", "--json")  # fmt: skip
    assert proc.returncode == 7 and says in proc.stdout, proc.stdout
    memory = run_swarm(lab, "finding", "add", "--subject", "H200", "--predicate", "memory_gb",
                       "--value=0", "--unit", "GB", "--statement", "s", "--json")  # fmt: skip
    assert memory.returncode == 7 and "must be above 0 GB" in memory.stdout, memory.stdout
    zero = run_swarm(lab, "finding", "add", "--subject", "Qwen3-8B", "--predicate",
                     "scaling_efficiency_pct", "--value=0", "--statement", "s")  # fmt: skip
    assert zero.returncode == 0, zero.stdout  # no scaling at all is a measurement


@pytest.mark.parametrize("spelt", ["tps_decode_single_stream", "single_stream_decode_tps"])
def test_a_registered_predicates_words_in_another_order_are_refused_naming_it(
    lab: Path, spelt: str
) -> None:
    proc = run_swarm(lab, "finding", "add", "--subject", "Qwen3-8B", "--predicate", spelt,
                     "--value", "95", "--statement", "s", "--json")  # fmt: skip
    assert proc.returncode == 7 and "did you mean 'decode_tps_single_stream'" in proc.stdout


def test_a_subject_spelt_with_unicode_dashes_or_spaces_is_one_fact_with_the_ascii_one(
    lab: Path, db: str
) -> None:
    store = open_store(db)
    cite = {"kind": "file", "locator": "README.md", "quote": {"exact": "16.0 tokens/s"}}
    spellings = ["ReviewKey-8B", "ReviewKey\u20108B", "ReviewKey\u22128B", "Review\u00a0Key-8B"]
    add_findings(store, [_claim(s, 16.0, cite) for s in spellings], "someone", T0)
    assert {f.subject for f in all_findings(store)} == {"ReviewKey-8B", "Review Key-8B"}
    keys = {f.key for f in facts.run(store, lab).facts.facts if "review" in f.key}
    assert {k.split("|")[0] for k in keys} == {"reviewkey-8b", "review-key-8b"}


@pytest.mark.parametrize("subject", ["Qwen\x013", "Qwen3\x7f", "Qwen3\u0085"])
def test_a_control_character_in_a_subject_is_refused_at_input(lab: Path, subject: str) -> None:
    proc = run_swarm(lab, "finding", "add", "--subject", subject, "--predicate",
                     "decode_tps_single_stream", "--value", "95", "--statement", "s", "--json")  # fmt: skip
    assert proc.returncode == 7 and "control characters" in proc.stdout, proc.stdout
