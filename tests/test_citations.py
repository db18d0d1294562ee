"""Each evidence kind checked offline against real files, a real git repo and real results, and
what the checker derives each proves about the claim that cites it."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarm.facts.citations import (
    FUZZY_MAX_BYTES,
    QUOTE_SEARCH_MAX_BYTES,
    CheckContext,
    RunGpu,
    RunRecord,
    anchor,
    check,
    contains,
    numbers_in,
)
from swarm.facts.findings import Evidence, Finding, Quote, Tier
from tests.conftest import REPO, git

TEXT = """The quick brown fox
jumps over the lazy dog.
SM120 is not recognized in the MXFP4 backend selection logic, causing fallback to Marlin.
"""


def finding(value: Any = 131.0, *evidence: Evidence, **scope: Any) -> Finding:
    return Finding(
        id="fd_x",
        agent="a",
        observed_at="2026-11-27T00:00:00.000000Z",
        subject="Qwen3-14B-NVFP4",
        predicate="decode_tps_single_stream",
        scope=scope,
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


SPARK = RunGpu(name="NVIDIA GB10", arch="sm_121")


def record(payload: dict[str, Any], status: str = "done", *gpus: RunGpu, **more: Any) -> RunRecord:
    fields: dict[str, Any] = {"id": "res-1", "task_id": "bench-1", "status": status,
                              "task_state": status, "agent": "spark-1", "registered": True,
                              "host": "spark", "gpus": gpus or (SPARK,), "payload": payload,
                              "measured": {"model": "Qwen3-14B-NVFP4"}}  # fmt: skip
    return RunRecord(**{**fields, **more})


def ctx(repo: Path, runs: dict[str, RunRecord] | None = None) -> CheckContext:
    from swarm.facts.registry import Registries
    from swarm.lab.pipeline import context

    return context(repo, runs or {}, Registries.load(REPO / "facts"))


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
    runs = {"res-1": record({"single_tps": 131.0})}
    ev = Evidence(kind="run", locator="res-1", metric="single_tps")
    assert check(ev, finding(131.0), ctx(repo, runs)).status == "ok"
    mismatch = check(ev, finding(160.0), ctx(repo, runs))
    assert mismatch.status == "broken" and "says single_tps = 131.0" in mismatch.message
    assert (
        check(Evidence(kind="run", locator="res-9"), finding(), ctx(repo, runs)).status == "broken"
    )


def test_a_run_is_local_evidence_only_when_done_measured_equal_and_on_matching_hardware(
    repo: Path,
) -> None:
    ev = Evidence(kind="run", locator="res-1", metric="single_tps")
    same = record({"single_tps": 11.3}, measured={"model": "nvidia/qwen3-14b-nvfp4"})
    good = check(ev, finding(11.0, gpu="DGX Spark"), ctx(repo, {"res-1": same}))
    assert (good.strength, good.origin) == (Tier.local, "spark-1@spark")  # within 10%
    cases = {
        "no metric": (Evidence(kind="run", locator="res-1"), record({"single_tps": 11.0})),
        "failed": (ev, record({"single_tps": 11.0}, "failed")),
        "GPU-less host": (ev, record({"single_tps": 11.0}, "done", RunGpu(name="cpu"))),
        "another GPU": (ev, record({"single_tps": 11.0}, "done", RunGpu(name="RTX 4090"))),
        "the catalog's": (ev, record({"single_tps": 11.0}, agent="catalog", registered=False)),
        "another model": (ev, record({"single_tps": 11.0}, measured={"model": "Qwen3-8B"})),
    }
    for why, (cited, rec) in cases.items():
        out = check(cited, finding(11.0, gpu="DGX Spark"), ctx(repo, {"res-1": rec}))
        assert out.strength is None, why
    arch = check(
        ev, finding(11.0, arch="SM121"), ctx(repo, {"res-1": record({"single_tps": 11.0})})
    )
    assert arch.strength == Tier.local  # GB10 is sm_121 through the hardware registry
    wrong_arch = check(
        ev, finding(11.0, arch="sm_120"), ctx(repo, {"res-1": record({"single_tps": 11.0})})
    )
    assert wrong_arch.strength is None and "not sm_120" in wrong_arch.message


def test_a_declared_tier_never_raises_what_a_citation_proves(repo: Path) -> None:
    (repo / "README.md").write_text("decode: 42.0 tokens/s\n")
    url = Evidence(kind="url", locator="https://x.org", snapshot="README.md",
                   quote=Quote(exact="42.0 tokens/s"), tier=Tier.local)  # fmt: skip
    assert check(url, finding(42.0), ctx(repo)).strength == Tier.primary
    doc = Evidence(kind="doc", locator="README.md", quote=Quote(exact="42.0"))
    assert check(doc, finding(42.0), ctx(repo)).strength == Tier.secondary
    low = Evidence(kind="file", locator="README.md", quote=Quote(exact="42.0"), tier=Tier.secondary)
    assert check(low, finding(42.0), ctx(repo)).strength == Tier.secondary


def test_a_document_supports_a_value_only_with_a_quote_that_contains_it(repo: Path) -> None:
    (repo / "pyproject.toml").write_text('name = "x"\nthroughput 6,396 tok/s at 1.8k ctx\n')
    bare = check(Evidence(kind="file", locator="pyproject.toml"), finding(42.0), ctx(repo))
    assert bare.status == "ok" and bare.strength is None and "context" in bare.message
    wrong = Evidence(kind="file", locator="pyproject.toml", quote=Quote(exact='name = "x"'))
    assert check(wrong, finding(42.0), ctx(repo)).strength is None
    right = Evidence(kind="file", locator="pyproject.toml", quote=Quote(exact="6,396 tok/s"))
    assert check(right, finding(6396.0), ctx(repo)).strength == Tier.primary
    assert check(right, finding(6400.0), ctx(repo)).strength is None


@pytest.mark.parametrize(
    ("quote", "says"),
    [
        ("vLLM 0.20 works on SM120", True),
        ("\u2705 Supported", True),
        ("Status: yes", True),
        ("All attention backends fail for MoE on SM120", False),
        ("HybridMambaAttentionDecoderLayer not supported.", False),
        ("it doesn\u2019t work on GB10", False),
        ("SMEM overflow on SM120", False),
        ("Qwen3-30B-A3B-NVFP4\nNVFP4\nvllm", None),  # a table row names, it does not say
    ],
)
def test_a_true_false_claim_is_supported_only_by_a_quote_whose_wording_says_it(
    repo: Path, quote: str, says: bool | None
) -> None:
    (repo / "notes.md").write_text(quote + "\n")
    ev = Evidence(kind="file", locator="notes.md", quote=Quote(exact=quote))
    for value in (True, False):
        out = check(ev, finding(value), ctx(repo))
        assert out.status == "ok"
        assert (out.strength is not None) is (says is value), (value, out.message)
        if out.strength is None:
            assert f"does not contain the value {value!r}" in out.message


def test_a_text_claim_is_supported_only_by_a_quote_containing_it_whatever_case_or_spacing(
    repo: Path,
) -> None:
    (repo / "notes.md").write_text(
        "Note: Code compiled for SM_100a\n   traps on consumer Blackwell.\n"
    )
    ev = Evidence(
        kind="file",
        locator="notes.md",
        quote=Quote(exact="Code compiled for SM_100a\n   traps on consumer Blackwell."),
    )
    held = check(ev, finding("code compiled for sm_100a traps on consumer  Blackwell"), ctx(repo))
    assert held.strength == Tier.primary
    other = check(ev, finding("sm_100a code runs everywhere"), ctx(repo))
    assert other.status == "ok" and other.strength is None and "does not contain" in other.message


def test_a_quote_holding_a_number_no_float_can_hold_is_read_without_it() -> None:
    assert numbers_in("1e400 tokens, 0e400 ms, 5 GB") == [(5.0, 0.5)]


def test_numbers_in_quotes_are_read_as_written() -> None:
    assert numbers_in("6,396 tok/s") == [(6396.0, 0.5)]
    assert [n for n, _ in numbers_in("Qwen3-14B on sm_120: 20.2")] == [20.2]
    assert [n for n, _ in numbers_in("1.8k tokens, \u22123 dB")] == [1800.0, -3.0]


def test_a_commit_must_exist_in_this_repo_and_be_spelled_in_full(repo: Path) -> None:
    git("commit", "-q", "--allow-empty", "-m", "decode reaches 95.5 tokens/s", cwd=repo)
    sha = git("rev-parse", "HEAD", cwd=repo)
    bare = check(Evidence(kind="commit", locator=sha), finding(), ctx(repo))
    assert bare.status == "ok" and bare.strength is None  # any existing commit proves nothing
    quoted = Evidence(kind="commit", locator=sha, quote=Quote(exact="95.5 tokens/s"))
    assert check(quoted, finding(95.5), ctx(repo)).strength == Tier.primary
    gone = Evidence(kind="commit", locator=sha, quote=Quote(exact="120 tokens/s"))
    assert check(gone, finding(120.0), ctx(repo)).status == "broken"
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


PROBE = """import pytest
@pytest.fixture(autouse=True)
def _subject(record_property):  # what each case is about, in the report (junit <property>)
    record_property("subject", "Qwen3-14B-NVFP4")
def test_ok(): pass
def test_bad(): assert False
@pytest.mark.skip(reason="not on this GPU")
def test_skip(): pass
class TestA:
    @pytest.mark.parametrize("x", [1, 2])
    def test_p(self, x): assert x == 1
@pytest.fixture
def boom(): raise RuntimeError("setup")
def test_err(boom): pass
"""


@pytest.fixture
def junit_repo(repo: Path) -> Path:
    """The repo with evidence/results/probe.xml, written by a real `pytest --junitxml` run."""
    (repo / "tests").mkdir()
    (repo / "tests" / "test_probe.py").write_text(PROBE)
    (repo / "evidence" / "results").mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_probe.py",
         "--junitxml=evidence/results/probe.xml"],
        cwd=repo, capture_output=True, check=False,
    )  # fmt: skip
    git("add", "evidence", cwd=repo)  # a report counts only once committed to the lab's repo
    git("commit", "-qm", "probe report", cwd=repo)
    return repo


def _test_ev(test: str, **more: Any) -> Evidence:
    return Evidence(kind="test", locator=test, snapshot="evidence/results/probe.xml", **more)


def test_a_test_citation_supports_a_claim_only_when_its_junit_report_says_the_case_passed(
    junit_repo: Path,
) -> None:
    c = ctx(junit_repo)
    passed = check(_test_ev("tests/test_probe.py::test_ok"), finding(True), c)
    assert passed.status == "ok" and passed.strength == Tier.local, passed.message
    assert check(_test_ev("tests/test_probe.py::TestA::test_p[1]"), finding(True), c).strength
    for test, outcome in (
        ("tests/test_probe.py::test_bad", "failed"),
        ("tests/test_probe.py::TestA::test_p[2]", "failed"),
        ("tests/test_probe.py::test_skip", "skipped"),
        ("tests/test_probe.py::test_err", "error"),
    ):
        out = check(_test_ev(test), finding(True), c)
        assert out.status == "ok" and out.strength is None, out.message
        assert f"reports it {outcome}" in out.message and "only a passing test" in out.message


def test_a_declared_passed_outcome_proves_nothing_against_the_report(junit_repo: Path) -> None:
    declared = _test_ev("tests/test_probe.py::test_bad", outcome="passed")
    out = check(declared, finding(True), ctx(junit_repo))
    assert out.strength is None
    assert "reports it failed" in out.message and "declares 'passed'" in out.message


def test_a_test_case_missing_from_its_report_is_a_broken_citation_saying_so(
    junit_repo: Path,
) -> None:
    out = check(_test_ev("tests/test_probe.py::test_gone"), finding(True), ctx(junit_repo))
    assert out.status == "broken" and "no test case 'test_gone'" in out.message
    gone = _test_ev("tests/test_probe.py::test_ok").model_copy(update={"snapshot": "no.xml"})
    missing = check(gone, finding(True), ctx(junit_repo))
    assert missing.status == "broken" and "does not exist" in missing.message


def test_an_old_declared_outcome_test_citation_is_reported_unverifiable_not_crashing(
    repo: Path,
) -> None:
    (repo / "log.txt").write_text("tests/test_probe.py::test_probe PASSED\n")
    git("add", "log.txt", cwd=repo)
    old = Evidence(
        kind="test",
        locator="tests/test_probe.py::test_probe",
        outcome="passed",
        snapshot="log.txt",
        quote=Quote(exact="test_probe PASSED"),
    )
    out = check(old, finding(True), ctx(repo))
    assert out.status == "unverifiable-offline" and out.strength is None
    assert "not a JUnit XML report" in out.message and "declares 'passed'" in out.message
    bare = check(Evidence(kind="test", locator="t::t", outcome="passed"), finding(), ctx(repo))
    assert bare.status == "unverifiable-offline" and "no saved report" in bare.message


def test_a_report_declaring_a_dtd_or_entities_is_refused_before_anything_expands(
    repo: Path,
) -> None:
    (repo / "bomb.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<testsuites><testsuite><testcase classname="t" name="t">&b;</testcase>'
        "</testsuite></testsuites>"
    )
    ev = Evidence(kind="test", locator="t::t", snapshot="bomb.xml")
    git("add", "bomb.xml", cwd=repo)
    out = check(ev, finding(True), ctx(repo))
    assert out.status == "unverifiable-offline" and "DTD" in out.message
    (repo / "bad.xml").write_text("<testsuite><testcase")
    git("add", "bomb.xml", "bad.xml", cwd=repo)
    torn = check(ev.model_copy(update={"snapshot": "bad.xml"}), finding(True), ctx(repo))
    assert torn.status == "unverifiable-offline" and "not well-formed" in torn.message


def test_a_nul_byte_in_a_path_is_a_broken_citation_not_a_crash(repo: Path) -> None:
    out = check(Evidence(kind="file", locator="docs/\x00note.md"), finding(), ctx(repo))
    assert out.status == "broken" and "NUL" in out.message


def test_a_quote_straddling_chunk_boundaries_is_found_by_the_streamed_search() -> None:
    chunks = ["aaaa lazy", "  do", "g. bbb"]
    assert contains(iter(chunks), ("lazy  dog", "lazy dog")) == "exact"
    assert contains(iter(chunks), ("lazy dog.", "lazy dog.")) == "normalised"
    assert contains(iter(chunks), ("cat", "cat")) == ""


def test_a_large_file_is_streamed_and_one_over_the_limit_is_checked_by_hash_only(
    repo: Path,
) -> None:
    big = repo / "big.log"
    with big.open("wb") as fh:
        fh.write(b"x" * (FUZZY_MAX_BYTES + 10) + b"\nthroughput 77.5 tokens/s\n")
    quoted = Evidence(kind="file", locator="big.log", quote=Quote(exact="77.5 tokens/s"))
    assert check(quoted, finding(77.5), ctx(repo)).strength == Tier.primary
    missing = Evidence(kind="file", locator="big.log", quote=Quote(exact="78.5 tokens/s"))
    gone = check(missing, finding(78.5), ctx(repo))
    assert gone.status == "broken" and "no fuzzy search" in gone.message
    with big.open("r+b") as fh:  # sparse: no disk or memory spent on the hole
        fh.truncate(QUOTE_SEARCH_MAX_BYTES + 1)
    huge = check(quoted, finding(77.5), ctx(repo))
    assert "checked by hash only" in huge.message and huge.strength is None


def test_checking_a_file_near_the_size_limit_keeps_memory_small(repo: Path) -> None:
    """A sparse file just under the quote-search limit, checked in a fresh process: its peak
    memory grows by far less than the file (the check streams)."""
    import subprocess
    import sys

    (repo / "near.bin").touch()
    with (repo / "near.bin").open("r+b") as fh:
        fh.truncate(QUOTE_SEARCH_MAX_BYTES - 1024)
    probe = (
        "import resource, sys; from pathlib import Path; "
        "from swarm.facts.citations import CheckContext, check; "
        "from swarm.facts.findings import Evidence, Finding, Quote; "
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
        "ev = Evidence(kind='file', locator='near.bin', quote=Quote(exact='77.5'), sha256='0'*64); "
        "f = Finding(id='x', agent='a', observed_at='t', subject='s', predicate='p', value=77.5, "
        "statement='s', evidence=(ev,)); "
        "ctx = CheckContext(repo=Path(sys.argv[1])); "
        "check(ev, f, ctx); check(ev.model_copy(update={'sha256': None}), f, ctx); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(repo)], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 64 * 1024  # KiB: well under the 64 MB the file would take


def test_a_run_is_compared_in_its_predicates_unit_and_a_bool_only_with_a_bool(repo: Path) -> None:
    runs = {"res-1": record({"single_tps": 11.0, "ok": 1, "serves": True})}
    run = Evidence(kind="run", locator="res-1", metric="single_tps")
    per_min = finding(11.0, run, gpu="DGX Spark").model_copy(update={"unit": "tokens/min"})
    wrong = check(run, per_min, ctx(repo, runs))  # 11 tokens/min is 0.18 tokens/s, not the run's 11
    assert wrong.status == "broken" and "11 tokens/min (0.183333 tokens/s)" in wrong.message
    right = per_min.model_copy(update={"value": 660.0})
    assert check(run, right, ctx(repo, runs)).strength == Tier.local
    # a predicate whose runs record true/false: a bool metric, never the number 1
    any_metric = dataclasses.replace(ctx(repo, runs), metrics=lambda _p: ("ok", "serves"))
    one = Evidence(kind="run", locator="res-1", metric="ok")
    assert check(one, finding(True, one, gpu="DGX Spark"), any_metric).status == "broken"
    said = Evidence(kind="run", locator="res-1", metric="serves")
    assert check(said, finding(True, said, gpu="DGX Spark"), any_metric).strength == Tier.local


REPORT = """<?xml version="1.0"?>
<testsuites><testsuite name="bench" tests="4">
<testcase classname="tests.test_bench" name="test_decode">
<properties><property name="single_tps" value="77.5"/></properties>
<system-out>Qwen3-14B-NVFP4 on RTX 4090: 1,234 tokens/s batched</system-out></testcase>
<testcase classname="tests.test_bench" name="test_tps_is_4343">
<properties><property name="subject" value="Qwen3-14B-NVFP4"/></properties></testcase>
<testcase classname="tests.test_bench" name="test_e4m3_encoder"/>
<testcase classname="tests.test_bench" name="test_broken"><failure message="no"/></testcase>
</testsuite></testsuites>
"""


@pytest.fixture
def bench_report(repo: Path) -> Path:
    (repo / "evidence").mkdir()
    (repo / "evidence" / "bench.xml").write_text(REPORT)
    git("add", "evidence/bench.xml", cwd=repo)
    return repo


def _bench(test: str) -> Evidence:
    return Evidence(
        kind="test", locator=f"tests/test_bench.py::{test}", snapshot="evidence/bench.xml"
    )


def test_a_passing_test_supports_true_and_not_false_and_a_failing_one_supports_neither(
    bench_report: Path,
) -> None:
    c = ctx(bench_report)
    assert check(_bench("test_tps_is_4343"), finding(True), c).strength == Tier.local
    no = check(_bench("test_tps_is_4343"), finding(False), c)
    assert no.strength is None and "not false" in no.message
    for value in (True, False):
        assert check(_bench("test_broken"), finding(value), c).strength is None


def test_a_passing_test_supports_a_number_only_when_its_case_records_that_number(
    bench_report: Path,
) -> None:
    c = ctx(bench_report)
    bare = check(_bench("test_tps_is_4343"), finding(4343.0), c)  # a name is no measurement
    assert bare.strength is None and "records no 4343.0" in bare.message
    assert check(_bench("test_decode"), finding(77.5), c).strength == Tier.local  # a property
    assert check(_bench("test_decode"), finding(1234.0), c).strength == Tier.local  # its output
    assert check(_bench("test_decode"), finding(99.0), c).strength is None
    # the 4090 and the 14 of the names in its output are no values
    assert check(_bench("test_decode"), finding(4090.0, gpu="RTX 4090"), c).strength is None
    assert check(_bench("test_decode"), finding(14.0), c).strength is None


def test_a_passing_test_supports_only_a_claim_about_what_its_case_names(
    bench_report: Path,
) -> None:
    """Else one green test would prove every true/false claim in the lab."""
    c = ctx(bench_report)
    other = check(_bench("test_e4m3_encoder"), finding(True), c)
    assert other.strength is None and "does not name 'Qwen3-14B-NVFP4'" in other.message
    about = finding(True).model_copy(update={"subject": "e4m3 encoder"})
    assert check(_bench("test_e4m3_encoder"), about, c).strength == Tier.local  # by its id


def test_two_agents_citing_one_report_are_one_origin_the_report(bench_report: Path) -> None:
    c = ctx(bench_report)
    mine = check(_bench("test_tps_is_4343"), finding(True), c)
    theirs = check(_bench("test_tps_is_4343"), finding(True).model_copy(update={"agent": "b"}), c)
    assert mine.origin == theirs.origin == "test:evidence/bench.xml"


def test_a_report_nobody_committed_is_a_broken_citation(repo: Path) -> None:
    (repo / "forged.xml").write_text(REPORT)
    ev = Evidence(kind="test", locator="tests/test_bench.py::test_decode", snapshot="forged.xml")
    out = check(ev, finding(True), ctx(repo))
    assert out.status == "broken" and out.strength is None and "not tracked" in out.message


def test_a_run_supports_a_predicate_only_through_a_metric_that_measures_it(repo: Path) -> None:
    runs = {"res-1": record({"single_tps": 55.0, "tasks_done": 5, "batched_tps": 55.0})}
    tasks = Evidence(kind="run", locator="res-1", metric="tasks_done")
    out = check(tasks, finding(5.0, gpu="DGX Spark"), ctx(repo, runs))
    assert out.strength is None and "the metrics that do are single_tps" in out.message
    batched = Evidence(kind="run", locator="res-1", metric="batched_tps")
    assert check(batched, finding(55.0, gpu="DGX Spark"), ctx(repo, runs)).strength is None
    tps = Evidence(kind="run", locator="res-1", metric="single_tps")
    memory = finding(55.0, tps).model_copy(update={"subject": "RTX 4090", "predicate": "memory_gb"})
    said = check(tps, memory, ctx(repo, runs))
    assert said.strength is None and "no run metric measures it" in said.message


def test_a_run_whose_task_names_no_model_or_another_supports_no_model_claim(repo: Path) -> None:
    ev = Evidence(kind="run", locator="res-1", metric="single_tps")
    for measured, says in (({}, "names no model"), ({"model": "Qwen3-8B"}, "measured Qwen3-8B")):
        runs = {"res-1": record({"single_tps": 11.0}, measured=measured)}
        out = check(ev, finding(11.0, gpu="DGX Spark"), ctx(repo, runs))
        assert out.strength is None and says in out.message, out.message


@pytest.mark.parametrize(
    ("quote", "value", "scope", "holds"),
    [
        ("Measured on RTX 4090", 4090.0, {"gpu": "RTX 4090"}, False),
        ("Measured on RTX 4090", 4090.0, {"gpu": "H200"}, False),  # a GPU the registry knows
        ("RTX 4090: 77 tokens/s", 77.0, {"gpu": "RTX 4090"}, True),
        ("rtx-4090 then 4090 tokens/s", 4090.0, {"gpu": "RTX 4090"}, True),
        ("Llama 3 70B at 12 tok/s", 3.0, {"model": "Llama 3 70B"}, False),
        ("Llama 3 70B at 12 tok/s", 12.0, {"model": "Llama 3 70B"}, True),
        ("Qwen3-14B on sm_120: 120", 120.0, {"arch": "sm_120"}, True),
        ("Qwen3-14B on sm_120", 120.0, {"arch": "sm_120"}, False),
    ],
)
def test_a_number_inside_a_name_of_the_claim_or_a_known_gpu_is_not_its_value(
    repo: Path, quote: str, value: float, scope: dict[str, str], holds: bool
) -> None:
    (repo / "docs" / "q.md").write_text(quote + "\n")
    ev = Evidence(kind="file", locator="docs/q.md", quote=Quote(exact=quote))
    out = check(ev, finding(value, ev, **scope), ctx(repo))
    assert (out.strength == Tier.primary) is holds, out.message
    if not holds and "4090" in quote:
        assert "inside a GPU, model or other name" in out.message
