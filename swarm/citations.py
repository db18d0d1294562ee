"""Offline citation checks: each piece of evidence against the repo, git and the store.

A check never reaches the network. A path must stay inside the repo (no `..`, no symlink out);
a snapshot's sha256 must match; a quote is found exactly, then whitespace-normalised, then
fuzzily (a score, reported as 'drifted'); a run must exist and carry the finding's number; a
commit must exist in this repo.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from swarm.findings import Evidence, EvidenceKind, Finding, Quote
from swarm.models import Model

CheckStatus = Literal["ok", "drifted", "broken", "unverifiable-offline"]
ISSUE_RE = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}#[1-9][0-9]*$")
SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
FUZZY_ACCEPT = (
    90.0  # rapidfuzz partial_ratio: at or above this a quote has drifted, below it is gone
)


class Check(Model):
    status: CheckStatus
    message: str
    score: float | None = None


@dataclass(frozen=True)
class CheckContext:
    repo: Path
    run_payload: Callable[[str], dict[str, Any] | None]  # result id -> payload, None if absent


def _ok(message: str, score: float | None = None) -> Check:
    return Check(status="ok", message=message, score=score)


def _broken(message: str) -> Check:
    return Check(status="broken", message=message)


def normalise(text: str) -> str:
    text = (
        unicodedata.normalize("NFKC", text)
        .replace("\u2019", "'")
        .replace("\u201c", '"')
        .replace("\u201d", '"')
    )
    return re.sub(r"\s+", " ", text).strip()


def anchor(quote: Quote, text: str) -> Check:
    """Find a quote: exact, then whitespace-normalised, then fuzzy with a score."""
    if quote.exact in text:
        return _ok("quote found exactly")
    if normalise(quote.exact) in normalise(text):
        return _ok("quote found once whitespace and typography are normalised")
    from rapidfuzz import fuzz  # imported only when a quote has moved

    match = fuzz.partial_ratio_alignment(normalise(quote.exact), normalise(text))
    if match is not None and match.score >= FUZZY_ACCEPT:
        found = normalise(text)[match.dest_start : match.dest_end]
        return Check(
            status="drifted",
            score=round(match.score, 1),
            message=f"quote changed (similarity {match.score:.0f}%): now reads {found[:120]!r}",
        )
    return _broken("quote not found in the cited text")


def repo_file(repo: Path, rel: str) -> Path | Check:
    """The file a repo path names, or why it cannot be used (escape, missing)."""
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        return _broken(f"{rel!r} must be a path inside the repo (no absolute path, no '..')")
    path = repo / rel
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return _broken(f"{rel} does not exist in the repo")
    if not resolved.is_relative_to(repo.resolve()):
        return _broken(f"{rel} resolves outside the repo (through a symlink)")
    if not resolved.is_file():
        return _broken(f"{rel} is not a file")
    return resolved


def _check_text(repo: Path, rel: str, sha256: str | None, quote: Quote | None) -> Check:
    found = repo_file(repo, rel)
    if isinstance(found, Check):
        return found
    data = found.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        return _broken(f"{rel} changed since it was cited (sha256 differs)")
    if quote is None:
        return _ok(f"{rel} exists" + (" and its sha256 matches" if sha256 else ""))
    return anchor(quote, data.decode("utf-8", errors="replace"))


def _check_run(evidence: Evidence, finding: Finding, ctx: CheckContext) -> Check:
    payload = ctx.run_payload(evidence.locator)
    if payload is None:
        return _broken(f"no result {evidence.locator} in the store")
    if evidence.metric is None:
        return _ok(f"result {evidence.locator} exists")
    recorded = payload.get(evidence.metric)
    if recorded is None:
        return _broken(f"result {evidence.locator} has no {evidence.metric!r}")
    if isinstance(finding.value, bool) or not isinstance(finding.value, int | float):
        same = recorded == finding.value
    else:
        same = isinstance(recorded, int | float) and abs(recorded - finding.value) <= 1e-6 * max(
            1.0, abs(recorded)
        )
    if not same:
        return _broken(
            f"result {evidence.locator} says {evidence.metric} = {recorded}, the finding {finding.value}"
        )
    return _ok(f"result {evidence.locator} records {evidence.metric} = {recorded}")


def _check_commit(evidence: Evidence, ctx: CheckContext) -> Check:
    if not SHA_RE.match(evidence.locator):
        return _broken(f"{evidence.locator!r} is not a full commit sha (abbreviations are refused)")
    import git  # gitpython, imported only for commit evidence

    try:
        git.Repo(ctx.repo, search_parent_directories=True).commit(evidence.locator)
    except (git.BadName, ValueError, git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        return _broken(f"commit {evidence.locator[:12]} is not in this repo ({type(exc).__name__})")
    return _ok(f"commit {evidence.locator[:12]} exists")


def _check_snapshotted(evidence: Evidence, ctx: CheckContext, what: str) -> Check:
    if evidence.snapshot is None:
        return Check(
            status="unverifiable-offline", message=f"{what}: no local snapshot to check offline"
        )
    return _check_text(ctx.repo, evidence.snapshot, evidence.sha256, evidence.quote)


def check(evidence: Evidence, finding: Finding, ctx: CheckContext) -> Check:
    """The outcome of checking one piece of evidence offline."""
    kind = evidence.kind
    if kind in (EvidenceKind.file, EvidenceKind.doc):
        return _check_text(ctx.repo, evidence.locator, evidence.sha256, evidence.quote)
    if kind == EvidenceKind.run:
        return _check_run(evidence, finding, ctx)
    if kind == EvidenceKind.commit:
        return _check_commit(evidence, ctx)
    if kind == EvidenceKind.test:
        if evidence.outcome is None:
            return _broken(f"test {evidence.locator}: no recorded outcome")
        if evidence.snapshot is None:
            return Check(
                status="unverifiable-offline", message=f"test {evidence.locator}: no saved report"
            )
        return _check_text(ctx.repo, evidence.snapshot, evidence.sha256, evidence.quote)
    if kind == EvidenceKind.issue:
        if not ISSUE_RE.match(evidence.locator):
            return _broken(f"{evidence.locator!r} is not an issue reference like owner/repo#123")
        return _check_snapshotted(evidence, ctx, evidence.locator)
    return _check_snapshotted(evidence, ctx, evidence.locator)  # url
