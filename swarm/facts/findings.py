"""Findings: one claim by one agent, with its evidence. Agents only append them.

A finding's id is derived from its content, so the same claim recorded twice (a retried report,
two agents importing the same seed) is one finding. Human triage decisions are findings too.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pydantic_core
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from swarm import SCHEMA_VERSION
from swarm.core import atomic
from swarm.core.errors import Forbidden, InvalidInput
from swarm.core.limits import STORED, is_stored
from swarm.core.limits import Scalar as Scalar  # re-exported: reconcile uses it
from swarm.core.models import InputModel, Model, iso, validation_message
from swarm.db.store import Conn, Store
from swarm.facts import units
from swarm.facts.registry import project
from swarm.facts.tier import TIER_RANK as TIER_RANK  # re-exported: the tier is a finding's
from swarm.facts.tier import Tier as Tier

DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"))


def fold_name(text: str) -> str:
    """A name as one key spells it: NFKC (fullwidth letters, no-break spaces), every Unicode
    dash and the minus sign as '-', runs of whitespace as one space, trimmed."""
    if text.isascii() and text.isprintable() and "  " not in text and text == text.strip():
        return text
    return " ".join(unicodedata.normalize("NFKC", text).translate(DASHES).split())


class EvidenceKind(StrEnum):
    run = "run"  # a result id in the store
    file = "file"  # a path in this repo
    doc = "doc"  # a document kept in this repo (a snapshot of a vendor doc, a write-up)
    commit = "commit"
    test = "test"
    issue = "issue"  # owner/repo#N
    url = "url"


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
    snapshot: str | None = Field(
        None, description="repo path of a saved copy (issue, url); test: its JUnit XML report"
    )
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    metric: str | None = Field(None, description="run: payload key holding the value")
    outcome: Literal["passed", "failed", "error"] | None = Field(
        None, description="test: unused, read from the report"
    )
    tier: Tier | None = Field(
        None,
        description="what the source is (a vendor doc: primary); the checker may lower it",
    )


class Decision(Model):
    """A person's triage decision, attached to the findings it judged (not to a conflict id,
    which changes when an unrelated finding arrives)."""

    conflict: str = Field(description="the conflict as it was named when decided (for people)")
    action: Literal["accept", "reject", "split", "defer", "undo"]
    findings: tuple[str, ...] = Field((), description="the findings the person judged")
    accept: tuple[str, ...] = Field((), description="finding ids accepted (action accept)")
    split_by: str | None = Field(None, description="the attribute a split keys by (action split)")
    undoes: str | None = Field(None, description="the decision this one reverses (action undo)")
    made_at: str | None = Field(None, description="when: the same decision made twice is two")
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

    @field_validator("subject")
    @classmethod
    def _subject(cls, subject: str, info: ValidationInfo) -> str:
        """One spelling per name: NFKC, Unicode dashes as '-', odd spaces as ' '; a control
        character is refused at input (a stored one is kept, to be shown and judged)."""
        if not is_stored(info) and any(unicodedata.category(c) == "Cc" for c in subject):
            raise PydanticCustomError("invalid_input", "must not contain control characters")
        return fold_name(subject)

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


def refuse_decisions(items: Iterable[NewFinding], who: str) -> None:
    """Raise Forbidden when a finding carries a triage decision: decisions are people's, recorded
    with `swarm triage` on the lab host or by the operator, never with an agent's findings."""
    for item in items:
        if item.kind == "decision" or item.decision is not None:
            raise Forbidden(
                f"finding {item.subject!r} carries a triage decision, and {who} is an agent: "
                "decisions are recorded by people (`swarm triage` on the lab host, or the "
                "operator's token); report the evidence as a claim finding instead"
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


def check_new(items: Iterable[NewFinding]) -> None:
    """What a claim must satisfy to be recorded, beyond its model: scope keys from the schema
    (facts/scope.toml), values its normalisers read, a unit convertible to its predicate's.

    Raises InvalidInput naming the known keys or the expected unit.
    """
    reg = project()
    for new in items:
        if new.kind != "claim":
            continue
        reg.check_scope(new.scope)
        like = reg.predicate_like(new.predicate)
        if like is not None:
            raise InvalidInput(
                f"predicate {new.predicate!r} is not in facts/predicates.toml; did you mean "
                f"{like!r}? (a new predicate must not be a near miss of a registered one: "
                "register it there first)"
            )
        predicate = reg.predicate(new.predicate)
        if new.predicate in reg.predicates:  # a predicate outside the registry is taken as written
            _check_type(new, predicate.type, predicate.unit)
        if isinstance(new.value, int | float) and not isinstance(new.value, bool):
            units.check(new.unit, predicate.unit, new.predicate)
            value = new.value
            if new.unit and predicate.unit and new.unit != predicate.unit:
                value = units.convert(value, new.unit, predicate.unit)
            wrong = predicate.out_of_range(float(value))
            if wrong is not None:
                raise InvalidInput(f"{new.predicate} {wrong}")


# What a value of each predicate type must be, as an error names it.
VALUE_TYPES = {"number": "a number", "bool": "true or false", "text": "text", "enum": "text"}


def value_fits(value: Scalar, kind: str) -> bool:
    """Is value of the predicate type kind (a bool is not a number, though Python says so)?"""
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)


def _check_type(new: NewFinding, kind: str, unit: str | None) -> None:
    if not value_fits(new.value, kind):
        raise InvalidInput(
            f"{new.predicate} takes {VALUE_TYPES[kind]} (facts/predicates.toml), got {new.value!r}"
        )
    if new.unit is not None and unit is None:
        raise InvalidInput(f"{new.predicate} takes no unit (got {new.unit!r})")


def insert_findings(
    conn: Conn,
    items: Iterable[NewFinding],
    agent: str,
    now: datetime,
    task_id: str | None = None,
) -> list[Finding]:
    """Append findings inside the caller's transaction; an existing id is kept as it was.

    Raises InvalidInput (check_new) before anything is written.
    """
    items = list(items)
    check_new(items)
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


class BadRow(Model):
    """A stored finding that no longer parses (written before a check existed, or edited by
    hand): readers skip it and report it, instead of failing on it."""

    id: str = Field(description="the finding id, or FILE:LINE for a log line")
    error: str


def load_findings(store: Store) -> tuple[list[Finding], list[BadRow]]:
    """Every finding in id order, and the rows that do not parse (never raised)."""
    rows = store.read(
        lambda conn: conn.execute("SELECT id, body FROM findings ORDER BY id").fetchall()
    )
    good, bad = [], []
    for fid, body in rows:
        try:
            good.append(Finding.model_validate_json(body, context=STORED))
        except ValidationError as exc:
            bad.append(BadRow(id=str(fid), error=validation_message(exc)))
    return good, bad


PAGE = 5000  # findings one read fetches: a pass streams the store in pages, never all at once


def iter_findings(store: Store, bad: list[BadRow]) -> Iterator[Finding]:
    """Every finding in id order, read a page at a time so a pass never holds every row; rows
    that do not parse are appended to bad (never raised).

    Each page is its own short read (keyset on the id): a finding added meanwhile is in this
    pass when its id sorts after the page read last, else in the next pass.
    """

    def page(op: str, after: str) -> Callable[[Conn], list[Any]]:
        sql = f"SELECT id, body FROM findings WHERE id {op} ? ORDER BY id LIMIT ?"
        return lambda conn: conn.execute(sql, (after, PAGE)).fetchall()

    rows = store.read(page(">=", ""))  # '>=': a row whose id is '' (written by hand) too
    while True:
        for fid, body in rows:
            try:
                yield Finding.model_validate_json(body, context=STORED)
            except ValidationError as exc:
                bad.append(BadRow(id=str(fid), error=validation_message(exc)))
        if len(rows) < PAGE:
            return
        rows = store.read(page(">", str(rows[-1][0])))


def all_findings(store: Store) -> list[Finding]:
    return load_findings(store)[0]


def load_log(path: Path, skip: frozenset[str] = frozenset()) -> tuple[list[Finding], list[BadRow]]:
    """A findings log's good lines, and its bad ones as rows to report; lines whose id is in
    `skip` (a store already holds them) are not validated again."""
    if not path.exists():
        return [], []
    good, bad = [], []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if skip and _held(line, skip):
                continue
            try:
                good.append(Finding.model_validate_json(line, context=STORED))
            except ValidationError as exc:
                torn = not line.endswith("\n") and _torn(line)
                error = TORN if torn else validation_message(exc)
                bad.append(BadRow(id=f"{path.name}:{n}", error=error))
    return good, bad


def _held(line: str, skip: frozenset[str]) -> bool:
    """Is this log line a finding whose id is in skip? Parsed by pydantic's JSON reader (jiter,
    faster than json's: every line of a 100k log is read on every pass), json's as a fallback
    for what jiter refuses (a lone surrogate escape), so the same lines are skipped."""
    try:
        raw = pydantic_core.from_json(line)
    except ValueError:
        try:
            raw = json.loads(line)
        except ValueError:
            return False
    return isinstance(raw, dict) and raw.get("id") in skip


TORN = "torn (the file ends mid-line: an interrupted write); `swarm facts repair` moves it aside"


def _torn(text: str) -> bool:
    """Whether the last line was cut by an interrupted write: no newline, and not JSON."""
    if not text or text.endswith("\n"):
        return False
    try:
        json.loads(text.rpartition("\n")[2])
    except ValueError:
        return True
    return False


def repair_log(path: Path) -> tuple[int, Path] | None:
    """Move a torn last line of the log at path to PATH.torn (appended, for people to read)
    and rewrite the log without it, atomically; (its line number, where it went), or None when
    the log is whole."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    if not _torn(text):
        return None
    whole, _, torn = text.rpartition("\n")
    aside = path.with_name(path.name + ".torn")
    previous = aside.read_text(encoding="utf-8", errors="replace") if aside.exists() else ""
    atomic.write_text(aside, previous + torn + "\n")
    atomic.write_text(path, whole + "\n" if whole else "")
    return text.count("\n") + 1, aside


def read_log(path: Path) -> list[Finding]:
    return load_log(path)[0]


def merge_log(store: Store, findings: Iterable[Finding]) -> int:
    """Bring findings from a log (another clone's) into the store; returns how many were new."""

    rows = [_finding_row(f) for f in findings]

    def merge(conn: Conn) -> int:
        return conn.executemany(INSERT_FINDING, rows).rowcount if rows else 0  # the new ones

    return store.write(merge)
