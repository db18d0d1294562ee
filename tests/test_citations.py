"""Each evidence kind checked offline against real files, a real git repo and real results."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from swarm.citations import CheckContext, anchor, check
from swarm.findings import Evidence, Finding, Quote
from tests.conftest import git

TEXT = """The quick brown fox
jumps over the lazy dog.
SM120 is not recognized in the MXFP4 backend selection logic, causing fallback to Marlin.
"""


def finding(value: Any = 131.0, *evidence: Evidence) -> Finding:
    return Finding(
        id="fd_x",
        agent="a",
        observed_at="2026-11-27T00:00:00.000000Z",
        subject="s",
        predicate="decode_tps_single_stream",
        value=value,
        statement="s",
        evidence=evidence,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.md").write_text(TEXT)
    git("init", "-q", cwd=tmp_path)
    return tmp_path


def ctx(repo: Path, runs: dict[str, dict[str, Any]] | None = None) -> CheckContext:
    return CheckContext(repo=repo, run_payload=(runs or {}).get)


def test_a_quote_is_found_exactly_then_normalised_then_fuzzily_with_a_score() -> None:
    assert anchor(Quote(exact="jumps over the lazy dog."), TEXT).message == "quote found exactly"
    spaced = anchor(Quote(exact="jumps   over\nthe lazy dog."), TEXT)
    assert spaced.status == "ok" and "normalised" in spaced.message
    drifted = anchor(
        Quote(exact="SM120 is not recognised in the MXFP4 backend selection logic"), TEXT
    )
    assert drifted.status == "drifted" and drifted.score is not None and 90 <= drifted.score < 100
    assert anchor(Quote(exact="NVFP4 KV cache shipped in 0.21"), TEXT).status == "broken"


def test_a_file_citation_checks_path_hash_and_quote(repo: Path) -> None:
    digest = hashlib.sha256(TEXT.encode()).hexdigest()
    good = Evidence(
        kind="file", locator="docs/note.md", sha256=digest, quote=Quote(exact="lazy dog")
    )
    assert check(good, finding(), ctx(repo)).status == "ok"
    (repo / "docs" / "note.md").write_text(TEXT + "edited\n")
    changed = check(good, finding(), ctx(repo))
    assert changed.status == "broken" and "sha256" in changed.message
    assert (
        check(Evidence(kind="doc", locator="docs/gone.md"), finding(), ctx(repo)).status == "broken"
    )


def test_a_path_may_not_escape_the_repo(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.txt"
    outside.write_text("secret")
    (repo / "link.txt").symlink_to(outside)
    for locator, needle in (
        ("../secret.txt", "inside the repo"),
        (str(outside), "inside the repo"),
        ("link.txt", "through a symlink"),
    ):
        result = check(Evidence(kind="file", locator=locator), finding(), ctx(repo))
        assert result.status == "broken" and needle in result.message, locator


def test_a_run_must_exist_and_carry_the_findings_number(repo: Path) -> None:
    runs = {"res-1": {"single_tps": 131.0}}
    ev = Evidence(kind="run", locator="res-1", metric="single_tps")
    assert check(ev, finding(131.0), ctx(repo, runs)).status == "ok"
    mismatch = check(ev, finding(140.0), ctx(repo, runs))
    assert mismatch.status == "broken" and "says single_tps = 131.0" in mismatch.message
    assert (
        check(Evidence(kind="run", locator="res-9"), finding(), ctx(repo, runs)).status == "broken"
    )


def test_a_commit_must_exist_in_this_repo_and_be_spelled_in_full(repo: Path) -> None:
    git("commit", "-q", "--allow-empty", "-m", "x", cwd=repo)
    sha = git("rev-parse", "HEAD", cwd=repo)
    assert check(Evidence(kind="commit", locator=sha), finding(), ctx(repo)).status == "ok"
    assert check(Evidence(kind="commit", locator="f" * 40), finding(), ctx(repo)).status == "broken"
    short = check(Evidence(kind="commit", locator=sha[:10]), finding(), ctx(repo))
    assert short.status == "broken" and "abbreviations" in short.message


def test_issues_and_urls_are_checked_against_their_snapshot_or_said_unverifiable(
    repo: Path,
) -> None:
    (repo / "evidence").mkdir()
    snap = repo / "evidence" / "31085.json"
    snap.write_text('{"body": "causing fallback to Marlin instead of native kernels"}')
    digest = hashlib.sha256(snap.read_bytes()).hexdigest()
    issue = Evidence(
        kind="issue",
        locator="vllm-project/vllm#31085",
        snapshot="evidence/31085.json",
        sha256=digest,
        quote=Quote(exact="fallback to Marlin"),
    )
    assert check(issue, finding(), ctx(repo)).status == "ok"
    bare = check(Evidence(kind="issue", locator="vllm-project/vllm#31085"), finding(), ctx(repo))
    assert bare.status == "unverifiable-offline"
    assert (
        check(Evidence(kind="issue", locator="vllm#31085"), finding(), ctx(repo)).status == "broken"
    )
    url = Evidence(kind="url", locator="https://example.com/x")
    assert check(url, finding(), ctx(repo)).status == "unverifiable-offline"


def test_a_test_citation_needs_its_recorded_outcome_and_report(repo: Path) -> None:
    (repo / "junit.xml").write_text('<testcase name="test_probe"><failure/></testcase>')
    ev = Evidence(
        kind="test",
        locator="tests/test_probe.py::test_probe",
        outcome="failed",
        snapshot="junit.xml",
        quote=Quote(exact="test_probe"),
    )
    assert check(ev, finding(), ctx(repo)).status == "ok"
    no_outcome = Evidence(kind="test", locator="tests/test_probe.py::test_probe")
    assert check(no_outcome, finding(), ctx(repo)).status == "broken"
