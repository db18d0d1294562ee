"""Findings: one claim by one agent, with its evidence. Agents only append them.

A finding's id is derived from its content, so the same claim recorded twice (a retried report,
two agents importing the same seed) is one finding. Human triage decisions are findings too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from swarm import SCHEMA_VERSION
from swarm.errors import InvalidInput
from swarm.limits import Scalar as Scalar  # re-exported: reconcile and registry use it
from swarm.models import InputModel, Model, iso, validation_message
from swarm.store import Conn, Store


class EvidenceKind(StrEnum):
    run = "run"  # a result id in the store
    file = "file"  # a path in this repo
    doc = "doc"  # a document kept in this repo (a snapshot of a vendor doc, a write-up)
    commit = "commit"
    test = "test"
    issue = "issue"  # owner/repo#N
    url = "url"


class Tier(StrEnum):
    """How much an evidence kind can prove, best first."""

    local = "local"  # a reproducible run or test here
    primary = "primary"  # an upstream source: code, issue, vendor document
    secondary = "secondary"  # a write-up about other work


TIER_RANK = {Tier.local: 3, Tier.primary: 2, Tier.secondary: 1}
DEFAULT_TIER = {
    EvidenceKind.run: Tier.local,
    EvidenceKind.test: Tier.local,
    EvidenceKind.commit: Tier.primary,
    EvidenceKind.file: Tier.primary,
    EvidenceKind.issue: Tier.primary,
    EvidenceKind.doc: Tier.secondary,
    EvidenceKind.url: Tier.secondary,
}


class Quote(Model):
    """A W3C TextQuoteSelector: the exact text, with a little context either side."""

    exact: str = Field(min_length=1)
    prefix: str = ""
    suffix: str = ""


class Evidence(Model):
    kind: EvidenceKind
    locator: str = Field(
        description="run: result id; file/doc: repo path; commit: sha; "
        "test: test id; issue: owner/repo#N; url: the URL"
    )
    quote: Quote | None = None
    line: int | None = Field(None, ge=1, description="where the quote was, a hint")
    snapshot: str | None = Field(None, description="repo path of a saved copy (issue, url)")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    metric: str | None = Field(None, description="run: payload key holding the value")
    outcome: Literal["passed", "failed", "error"] | None = Field(None, description="test outcome")
    tier: Tier | None = Field(
        None, description="override the kind's default tier (e.g. a vendor doc)"
    )

    @property
    def effective_tier(self) -> Tier:
        return self.tier or DEFAULT_TIER[self.kind]

    @property
    def origin(self) -> str:
        """Independent origins: twenty agents citing one page are one origin."""
        return f"{self.kind}:{self.snapshot or self.locator}".lower()


class Decision(Model):
    """A person's triage decision on a conflict."""

    conflict: str
    action: Literal["accept", "reject", "split", "defer"]
    accept: tuple[str, ...] = Field((), description="finding ids accepted (action accept)")
    reason: str = Field(min_length=3)
    by: str


class NewFinding(InputModel):
    """What an agent records; the store adds id and timestamps."""

    subject: str = Field(min_length=1)
    predicate: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    scope: dict[str, Scalar] = {}
    value: Scalar
    unit: str | None = None
    statement: str = Field(min_length=1, max_length=500)
    evidence: tuple[Evidence, ...] = ()
    attributes: dict[str, Scalar | None] = Field({}, description="context not part of the key")
    kind: Literal["claim", "decision"] = "claim"
    decision: Decision | None = None

    @field_validator("scope")
    @classmethod
    def _scope_keys(cls, scope: dict[str, Scalar]) -> dict[str, Scalar]:
        for key in scope:
            if not key.replace("_", "").isalnum():
                raise ValueError(f"scope key {key!r} must be a plain identifier")
        return scope


class Finding(NewFinding):
    schema_version: int = SCHEMA_VERSION
    id: str
    agent: str
    task_id: str | None = None
    observed_at: str


def finding_id(new: NewFinding, agent: str) -> str:
    body = new.model_dump(mode="json", exclude_defaults=True)
    return (
        "fd_" + hashlib.sha256(json.dumps([body, agent], sort_keys=True).encode()).hexdigest()[:12]
    )


def parse_findings(raw: Iterable[object]) -> list[NewFinding]:
    try:
        return [NewFinding.model_validate(item) for item in raw]
    except ValidationError as exc:
        raise InvalidInput(f"invalid finding: {validation_message(exc)}") from exc


INSERT_FINDING = (
    "INSERT INTO findings (id, kind, subject, predicate, body, agent, task_id, observed_at) "
    "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING"
)


def _finding_row(f: Finding) -> tuple[object, ...]:
    return (f.id, f.kind, f.subject, f.predicate, f.model_dump_json(), f.agent, f.task_id,
            f.observed_at)  # fmt: skip


def insert_findings(
    conn: Conn,
    items: Iterable[NewFinding],
    agent: str,
    now: datetime,
    task_id: str | None = None,
) -> list[Finding]:
    """Append findings inside the caller's transaction; an existing id is kept as it was."""
    out = [
        Finding(
            **new.model_dump(),
            id=finding_id(new, agent),
            agent=agent,
            task_id=task_id,
            observed_at=iso(now),
        )
        for new in items
    ]
    if out:
        conn.executemany(INSERT_FINDING, [_finding_row(f) for f in out])
    return out


def add_findings(
    store: Store,
    items: Iterable[NewFinding],
    agent: str,
    now: datetime,
    task_id: str | None = None,
) -> list[Finding]:
    return store.write(lambda conn: insert_findings(conn, list(items), agent, now, task_id))


def all_findings(store: Store) -> list[Finding]:
    rows = store.read(lambda conn: conn.execute("SELECT body FROM findings ORDER BY id").fetchall())
    return [Finding.model_validate_json(r[0]) for r in rows]


def read_log(path: Path) -> list[Finding]:
    if not path.exists():
        return []
    try:
        return [
            Finding.model_validate_json(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line
        ]
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {validation_message(exc)}") from exc


def merge_log(store: Store, findings: Iterable[Finding]) -> int:
    """Bring findings from a log (another clone's) into the store; returns how many were new."""

    rows = [_finding_row(f) for f in findings]

    def merge(conn: Conn) -> int:
        return conn.executemany(INSERT_FINDING, rows).rowcount if rows else 0  # the new ones

    return store.write(merge)
