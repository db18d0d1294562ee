"""Search over everything the lab wrote: findings, task titles and notes, results' notes, job logs.

SQLite answers from its FTS5 index (search_docs_fts, migration 0003_search), PostgreSQL from its
own full-text search over GIN expression indexes; both behind `search`, both kept current by the
writes themselves (triggers, or an index on the rows), so a finding is findable once its
transaction commits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from swarm import SCHEMA_VERSION
from swarm.core.errors import InvalidInput
from swarm.core.models import Model
from swarm.db.migrations import PG_SEARCH
from swarm.db.store import SQLITE, Conn, Store

Kind = Literal["finding", "task", "result", "log"]
KINDS: tuple[Kind, ...] = ("finding", "task", "result", "log")
TEXT_MAX = 500
LIMIT_MAX = 100
MARK = ("«", "»")  # around the matched words in a snippet
_WORDS = re.compile(r"\w+")
_PG_TABLES = {"finding": "findings", "task": "tasks", "result": "results", "log": "results"}
_PG_TASK = {"finding": "task_id", "task": "id", "result": "task_id", "log": "task_id"}


class SearchHit(Model):
    kind: Kind
    id: str = Field(description="what to follow: a finding, task or result id")
    task_id: str | None = Field(None, description="the task it belongs to, if any")
    title: str
    snippet: str = Field(description="the best passage, matched words between « and »")
    score: float = Field(description="relevance, higher first")
    related: tuple[str, ...] = Field(
        (), description="failed deployments this finding names (platform, GPU arch, model)"
    )


class SearchResults(Model):
    schema_version: int = SCHEMA_VERSION
    query: str
    match: Literal["all", "any"] = Field(
        description="all: every word matched; any: nothing had all, so these have some"
    )
    hits: tuple[SearchHit, ...]


def words(text: str) -> list[str]:
    """The words of a query (punctuation and search syntax dropped); raises InvalidInput."""
    if len(text) > TEXT_MAX:
        raise InvalidInput(f"a search is at most {TEXT_MAX} characters (got {len(text)})")
    found = _WORDS.findall(text)
    if not found:
        raise InvalidInput("search for at least one word (letters or digits)")
    return found[:32]


def search(
    store: Store,
    text: str,
    kinds: Sequence[str] = (),
    limit: int = 20,
) -> SearchResults:
    """The best matches for every word of text, else for any of them; raises InvalidInput."""
    terms = words(text)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise InvalidInput(f"unknown kind {', '.join(unknown)}; kinds: {', '.join(KINDS)}")
    if not 1 <= limit <= LIMIT_MAX:
        raise InvalidInput(f"limit must be 1..{LIMIT_MAX}, got {limit}")
    chosen = [k for k in KINDS if not kinds or k in kinds]

    def run(conn: Conn) -> SearchResults:
        query = _sqlite if conn.dialect is SQLITE else _postgres
        match: Literal["all", "any"] = "all"
        hits = query(conn, terms, match, chosen, limit)
        if not hits and len(terms) > 1:
            match = "any"
            hits = query(conn, terms, match, chosen, limit)
        return SearchResults(query=text, match=match, hits=_with_related(conn, hits))

    return store.read(run)


def _hit(row: tuple[Any, ...]) -> SearchHit:
    kind, ref, task_id, title, snippet, score = row
    return SearchHit(
        kind=kind,
        id=ref,
        task_id=task_id,
        title=title,
        snippet=" ".join((snippet or "").split()),
        score=round(float(score), 4),
    )


def _sqlite(
    conn: Conn, terms: list[str], match: str, kinds: Sequence[str], limit: int
) -> tuple[SearchHit, ...]:
    # Each word quoted: FTS5 operators and punctuation in a query are words to find, not syntax.
    expression = (" " if match == "all" else " OR ").join(f'"{t}"' for t in terms)
    marks = ", ".join("?" for _ in kinds)
    rows = conn.execute(
        "SELECT d.kind, d.ref, d.task_id, d.title, "
        f"snippet(search_docs_fts, -1, '{MARK[0]}', '{MARK[1]}', '…', 24), "
        "-bm25(search_docs_fts, 2.0, 1.0) AS score "  # title words weigh double
        "FROM search_docs_fts JOIN search_docs d ON d.rowid = search_docs_fts.rowid "
        f"WHERE search_docs_fts MATCH ? AND d.kind IN ({marks}) "
        "ORDER BY score DESC, d.ref LIMIT ?",
        (expression, *kinds, limit),
    ).fetchall()
    return tuple(_hit(tuple(r)) for r in rows)


def _postgres(
    conn: Conn, terms: list[str], match: str, kinds: Sequence[str], limit: int
) -> tuple[SearchHit, ...]:
    branches = []
    for kind in kinds:
        title, doc = PG_SEARCH[kind]
        vector = f"to_tsvector('english', {doc})"  # the indexed expression, as indexed
        weighted = f"setweight(to_tsvector('english', {title}), 'A') || {vector}"  # titles first
        branches.append(
            f"SELECT '{kind}' AS kind, id AS ref, {_PG_TASK[kind]} AS task_id, {title} AS title, "
            f"{doc} AS doc, ts_rank({weighted}, q.q) AS score "
            f"FROM {_PG_TABLES[kind]}, q WHERE {vector} @@ q.q"
        )
    headline = f"StartSel={MARK[0]}, StopSel={MARK[1]}, MaxWords=30, MinWords=10"
    rows = conn.execute(
        "WITH q AS (SELECT websearch_to_tsquery('english', ?) AS q) "
        f"SELECT kind, ref, task_id, title, ts_headline('english', doc, q.q, '{headline}'), score "
        f"FROM ({' UNION ALL '.join(branches)}) hits, q ORDER BY score DESC, ref LIMIT ?",
        ((" " if match == "all" else " or ").join(terms), limit),
    ).fetchall()
    return tuple(_hit(tuple(r)) for r in rows)


def _tokens(text: str) -> set[str]:
    return {w.lower() for w in _WORDS.findall(text.replace("_", ""))}


def _names(finding: dict[str, Any], task: dict[str, Any]) -> bool:
    """Whether a finding names this failed deployment: its platform in the finding's subject or
    scope (a statement's "use vLLM" names the way out, not the failure), its GPU arch anywhere
    (SM120 or sm_120), and every word of its model where the finding scopes one."""
    scope = finding.get("scope") or {}
    named = _tokens(" ".join(str(v) for v in (finding["subject"], *scope.values())))
    said = named | _tokens(finding["statement"])
    spec, arch = task["spec"], task["requires"].get("arch") or ""
    if str(spec.get("platform", "")).lower() not in named or not _tokens(arch) <= said:
        return False
    model = scope.get("model")
    return not isinstance(model, str) or _tokens(model) <= _tokens(str(spec.get("model", "")))


def _with_related(conn: Conn, hits: tuple[SearchHit, ...]) -> tuple[SearchHit, ...]:
    ids = [h.id for h in hits if h.kind == "finding"]
    if not ids:
        return hits
    marks = ", ".join("?" for _ in ids)
    bodies = {
        r[0]: json.loads(r[1])
        for r in conn.execute(f"SELECT id, body FROM findings WHERE id IN ({marks})", ids)
    }
    failed = [
        {"id": r[0], "spec": json.loads(r[1]), "requires": json.loads(r[2])}
        for r in conn.execute(
            "SELECT id, spec, requires FROM tasks WHERE kind = 'deploy' AND state = 'failed' "
            "ORDER BY id"
        )
    ]
    return tuple(
        h.model_copy(update={"related": tuple(t["id"] for t in failed if _names(bodies[h.id], t))})
        if h.id in bodies
        else h
        for h in hits
    )
