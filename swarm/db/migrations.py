"""Named, append-only schema migrations, applied in order when the store opens.

Never edit or reorder an entry that has shipped: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# A step is SQL (statements split on ";") or a function of the migration's connection, for
# steps built by a library (sqlite-utils' FTS tables and triggers).
Step = str | Callable[[Any], None]

# What search indexes, one document per row: (kind, the id to follow, its task, title, body).
# One template per source table, filled with `new` in the triggers and the table in the backfill,
# so the two cannot drift. Scope and spec go in as their JSON text: the tokenizer keeps the
# words (gpu, RTX, Pro, 6000) and drops the punctuation.
SEARCH_SOURCES: dict[str, str] = {
    "findings": "'finding', {r}.id, {r}.task_id, {r}.subject || ' ' || {r}.predicate, "
    "coalesce(json_extract({r}.body, '$.statement'), '') || ' ' || "
    "CASE WHEN json_extract({r}.body, '$.value') = json_extract({r}.body, '$.statement') "
    "THEN '' ELSE coalesce(json_extract({r}.body, '$.value'), '') END || ' ' || "
    "coalesce(json_extract({r}.body, '$.unit'), '') || ' ' || "
    "coalesce(json_extract({r}.body, '$.scope'), '')",
    "tasks": "'task', {r}.id, {r}.id, {r}.title, "
    "{r}.kind || ' ' || {r}.id || ' ' || coalesce({r}.note, '') || ' ' || {r}.spec",
    "results": "'result', {r}.id, {r}.task_id, {r}.status || ' ' || {r}.agent, "
    "coalesce({r}.note, '') || ' ' || coalesce(json_extract({r}.payload, '$.error'), '')",
}
# A job's log tail rides in its result's payload (job.log_tail): a document of its own.
SEARCH_LOG = (
    "'log', {r}.id, {r}.task_id, 'log of ' || {r}.task_id, "
    "json_extract({r}.payload, '$.job.log_tail')"
)
SEARCH_DOC_COLUMNS = "kind, ref, task_id, title, body"


def _search_triggers() -> str:
    docs = f"INSERT INTO search_docs ({SEARCH_DOC_COLUMNS})"
    f, t, r = (SEARCH_SOURCES[k].format(r="new") for k in ("findings", "tasks", "results"))
    has_log = "json_extract(new.payload, '$.job.log_tail') IS NOT NULL"
    return f"""
    CREATE TRIGGER findings_search AFTER INSERT ON findings BEGIN
      {docs} VALUES ({f});
    END;
    CREATE TRIGGER tasks_search AFTER INSERT ON tasks BEGIN
      {docs} VALUES ({t});
    END;
    CREATE TRIGGER tasks_search_note AFTER UPDATE OF title, note ON tasks
    WHEN old.note IS NOT new.note OR old.title IS NOT new.title BEGIN
      DELETE FROM search_docs WHERE kind = 'task' AND ref = new.id;
      {docs} VALUES ({t});
    END;
    CREATE TRIGGER results_search AFTER INSERT ON results BEGIN
      {docs} VALUES ({r});
      {docs} SELECT {SEARCH_LOG.format(r="new")} WHERE {has_log};
    END;
    """


def sqlite_search(conn: Any) -> None:
    """0003_search on SQLite: one search_docs row per finding, task, result and job log, kept
    by triggers on those tables, and sqlite-utils' FTS5 index (porter stemming: "overflows"
    finds "overflow") with its own triggers over search_docs.

    findings and results are WITHOUT ROWID tables, which an external-content FTS5 table cannot
    index directly; search_docs gives every document a rowid.
    """
    import sqlite_utils  # loads only when a lab database is created or upgraded

    # Inside the store's transaction: sqlite-utils runs its scripts statement by statement
    # there (no implicit COMMIT), so a crash leaves the migration wholly applied or not at all.
    db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
    db.execute(
        "CREATE TABLE search_docs (rowid INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
        "ref TEXT NOT NULL, task_id TEXT, title TEXT NOT NULL, body TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX search_docs_by_ref ON search_docs(ref)")
    for table, template in SEARCH_SOURCES.items():
        source = template.format(r=table)
        db.execute(f"INSERT INTO search_docs ({SEARCH_DOC_COLUMNS}) SELECT {source} FROM {table}")
    log = SEARCH_LOG.format(r="results")
    db.execute(
        f"INSERT INTO search_docs ({SEARCH_DOC_COLUMNS}) SELECT {log} FROM results "
        "WHERE json_extract(results.payload, '$.job.log_tail') IS NOT NULL"
    )
    db.executescript(_search_triggers())
    db.table("search_docs").enable_fts(["title", "body"], create_triggers=True, tokenize="porter")


MIGRATIONS: tuple[tuple[str, Step], ...] = (
    (
        "0001_queue",
        """
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            spec TEXT NOT NULL,
            state TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            requires TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL DEFAULT 3,
            dedupe_key TEXT UNIQUE,
            epoch INTEGER NOT NULL DEFAULT 0,
            holder TEXT,
            claimed_at TEXT,
            expires_at TEXT,
            note TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        -- Partial indexes: a claim scans pending tasks in priority order (rowid breaking ties),
        -- reaping scans claimed tasks by expiry. Partial, so a claim and a report each move
        -- one small index entry instead of rewriting entries for every state (fewer WAL pages).
        CREATE INDEX tasks_pending ON tasks(priority DESC) WHERE state = 'pending';
        CREATE INDEX tasks_leased ON tasks(expires_at) WHERE state = 'claimed';
        CREATE TABLE task_deps (
            task_id TEXT NOT NULL REFERENCES tasks(id),
            depends_on TEXT NOT NULL REFERENCES tasks(id),
            PRIMARY KEY (task_id, depends_on)
        ) WITHOUT ROWID;
        CREATE INDEX task_deps_reverse ON task_deps(depends_on);
        CREATE TABLE gpu_leases (
            task_id TEXT PRIMARY KEY REFERENCES tasks(id),
            epoch INTEGER NOT NULL,
            host TEXT NOT NULL,
            gpu_uuid TEXT NOT NULL,
            gpu_name TEXT NOT NULL,
            gb REAL NOT NULL,
            exclusive INTEGER NOT NULL
        );
        CREATE INDEX gpu_leases_by_host ON gpu_leases(host);
        CREATE TABLE agents (
            id TEXT PRIMARY KEY,
            capabilities TEXT NOT NULL,
            registered_at TEXT NOT NULL,
            last_seen TEXT NOT NULL
        );
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,  -- no AUTOINCREMENT: events are never deleted
            task_id TEXT NOT NULL,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            epoch INTEGER,
            detail TEXT
        );
        CREATE INDEX events_by_task ON events(task_id, seq);
        -- id is derived from (task_id, idempotency_key), so a retried report finds its
        -- result by primary key: no separate unique index to write on every report.
        CREATE TABLE results (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL REFERENCES tasks(id),
            epoch INTEGER NOT NULL,
            agent TEXT NOT NULL,
            status TEXT NOT NULL,
            payload TEXT NOT NULL,
            note TEXT,
            idempotency_key TEXT NOT NULL,
            created_at TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX results_by_task ON results(task_id);
        """,
    ),
    (
        "0002_findings",
        """
        -- Append-only: agents add findings, the reconciler derives facts from all of them.
        CREATE TABLE findings (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            predicate TEXT NOT NULL,
            body TEXT NOT NULL,
            agent TEXT NOT NULL,
            task_id TEXT,
            observed_at TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX findings_by_key ON findings(subject, predicate);
        -- The last offline check of each piece of evidence (swarm facts verify).
        CREATE TABLE evidence_checks (
            finding_id TEXT NOT NULL REFERENCES findings(id),
            idx INTEGER NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL,
            score REAL,
            PRIMARY KEY (finding_id, idx)
        ) WITHOUT ROWID
        """,
    ),
    ("0003_search", sqlite_search),
    (
        "0004_findings_by_kind",
        # triage reads the decisions and a stamp of the claims (count, newest) without scanning
        # every finding's body (issue #16: triage at 100k findings in under half a second)
        "CREATE INDEX IF NOT EXISTS findings_by_kind ON findings(kind, observed_at)",
    ),
    (
        "0005_replications",
        """
        -- Work a conflict created for itself (swarm/lab/replication.py): one row per thing to
        -- settle, keyed by what it settles (PURPOSE:FACT KEY), never by a conflict id, which
        -- changes when an unrelated finding arrives. origins and hosts (JSON lists) are who
        -- may not run it, derived from the conflict's sides when it was queued.
        CREATE TABLE IF NOT EXISTS replications (
            key TEXT PRIMARY KEY,
            purpose TEXT NOT NULL,
            fact_key TEXT NOT NULL,
            conflict TEXT,
            task_id TEXT NOT NULL REFERENCES tasks(id),
            deploy_task TEXT REFERENCES tasks(id),
            gpu TEXT,
            origins TEXT NOT NULL,
            hosts TEXT NOT NULL,
            note TEXT,
            created_at TEXT NOT NULL,
            cancelled_by TEXT
        ) WITHOUT ROWID;
        -- The tasks a replication guards (its benchmark or research task, its deploy task):
        -- the claim looks each ready task up here by primary key.
        CREATE TABLE IF NOT EXISTS replication_tasks (
            task_id TEXT PRIMARY KEY REFERENCES tasks(id),
            replication TEXT NOT NULL REFERENCES replications(key)
        ) WITHOUT ROWID
        """,
    ),
    (
        "0006_tokens",
        """
        -- Bearer tokens of agents (and people) for `swarm serve --http`, stored as SHA-256
        -- hashes: the lab database never holds a usable token. One token per name.
        CREATE TABLE IF NOT EXISTS tokens (
            hash TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            created_at TEXT NOT NULL
        ) WITHOUT ROWID
        """,
    ),
)

# The same schema on PostgreSQL, entry for entry (same names, same order, same columns).
# Text sorts bytewise (COLLATE "C"), as in SQLite, so both stores list things in one order;
# REAL is double precision, as SQLite's is; tasks keep an explicit `rowid` (SQLite's implicit
# one is their insertion order) so the same SQL pages and orders them on both.
# PostgreSQL's search documents: kind -> (title, text) over the kind's table; the text
# expression is also what the kind's GIN index is built on. No `;` in them (the migration is
# split on it).
PG_SEARCH: dict[str, tuple[str, str]] = {
    "finding": (
        "subject || ' ' || predicate",
        "subject || ' ' || predicate || ' ' || coalesce(body::jsonb ->> 'statement', '') "
        "|| ' ' || CASE WHEN body::jsonb ->> 'value' = body::jsonb ->> 'statement' THEN '' "
        "ELSE coalesce(body::jsonb ->> 'value', '') END || ' ' "
        "|| coalesce(body::jsonb ->> 'unit', '') || ' ' || coalesce(body::jsonb ->> 'scope', '')",
    ),
    "task": (
        "title",
        "title || ' ' || kind || ' ' || id || ' ' || coalesce(note, '') || ' ' || spec",
    ),
    "result": (
        "status || ' ' || agent",
        "status || ' ' || agent || ' ' || coalesce(note, '') || ' ' "
        "|| coalesce(payload::jsonb ->> 'error', '')",
    ),
    "log": ("'log of ' || task_id", "coalesce(payload::jsonb -> 'job' ->> 'log_tail', '')"),
}

POSTGRES_MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_queue",
        """
        CREATE TABLE tasks (
            id TEXT COLLATE "C" PRIMARY KEY,
            rowid BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE,
            kind TEXT COLLATE "C" NOT NULL,
            title TEXT COLLATE "C" NOT NULL,
            spec TEXT COLLATE "C" NOT NULL,
            state TEXT COLLATE "C" NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            requires TEXT COLLATE "C" NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL DEFAULT 3,
            dedupe_key TEXT COLLATE "C" UNIQUE,
            epoch INTEGER NOT NULL DEFAULT 0,
            holder TEXT COLLATE "C",
            claimed_at TEXT COLLATE "C",
            expires_at TEXT COLLATE "C",
            note TEXT COLLATE "C",
            created_at TEXT COLLATE "C" NOT NULL,
            updated_at TEXT COLLATE "C" NOT NULL
        );
        CREATE INDEX tasks_pending ON tasks(priority DESC, rowid) WHERE state = 'pending';
        CREATE INDEX tasks_leased ON tasks(expires_at) WHERE state = 'claimed';
        CREATE TABLE task_deps (
            task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks(id),
            depends_on TEXT COLLATE "C" NOT NULL REFERENCES tasks(id),
            PRIMARY KEY (task_id, depends_on)
        );
        CREATE INDEX task_deps_reverse ON task_deps(depends_on);
        CREATE TABLE gpu_leases (
            task_id TEXT COLLATE "C" PRIMARY KEY REFERENCES tasks(id),
            epoch INTEGER NOT NULL,
            host TEXT COLLATE "C" NOT NULL,
            gpu_uuid TEXT COLLATE "C" NOT NULL,
            gpu_name TEXT COLLATE "C" NOT NULL,
            gb DOUBLE PRECISION NOT NULL,
            exclusive INTEGER NOT NULL
        );
        CREATE INDEX gpu_leases_by_host ON gpu_leases(host);
        CREATE TABLE agents (
            id TEXT COLLATE "C" PRIMARY KEY,
            capabilities TEXT COLLATE "C" NOT NULL,
            registered_at TEXT COLLATE "C" NOT NULL,
            last_seen TEXT COLLATE "C" NOT NULL
        );
        CREATE TABLE events (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            task_id TEXT COLLATE "C" NOT NULL,
            at TEXT COLLATE "C" NOT NULL,
            actor TEXT COLLATE "C" NOT NULL,
            action TEXT COLLATE "C" NOT NULL,
            epoch INTEGER,
            detail TEXT COLLATE "C"
        );
        CREATE INDEX events_by_task ON events(task_id, seq);
        CREATE TABLE results (
            id TEXT COLLATE "C" PRIMARY KEY,
            task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks(id),
            epoch INTEGER NOT NULL,
            agent TEXT COLLATE "C" NOT NULL,
            status TEXT COLLATE "C" NOT NULL,
            payload TEXT COLLATE "C" NOT NULL,
            note TEXT COLLATE "C",
            idempotency_key TEXT COLLATE "C" NOT NULL,
            created_at TEXT COLLATE "C" NOT NULL
        );
        CREATE INDEX results_by_task ON results(task_id)
        """,
    ),
    (
        "0002_findings",
        """
        CREATE TABLE findings (
            id TEXT COLLATE "C" PRIMARY KEY,
            kind TEXT COLLATE "C" NOT NULL,
            subject TEXT COLLATE "C" NOT NULL,
            predicate TEXT COLLATE "C" NOT NULL,
            body TEXT COLLATE "C" NOT NULL,
            agent TEXT COLLATE "C" NOT NULL,
            task_id TEXT COLLATE "C",
            observed_at TEXT COLLATE "C" NOT NULL
        );
        CREATE INDEX findings_by_key ON findings(subject, predicate);
        CREATE TABLE evidence_checks (
            finding_id TEXT COLLATE "C" NOT NULL REFERENCES findings(id),
            idx INTEGER NOT NULL,
            status TEXT COLLATE "C" NOT NULL,
            message TEXT COLLATE "C" NOT NULL,
            score DOUBLE PRECISION,
            PRIMARY KEY (finding_id, idx)
        )
        """,
    ),
    (
        "0003_search",
        # The same documents as SQLite's search_docs, read straight from their tables through
        # expression indexes (always current, nothing to keep): swarm.db.search queries these
        # exact expressions, which is what lets PostgreSQL use the indexes.
        "CREATE INDEX findings_search ON findings USING gin (to_tsvector('english', "
        + PG_SEARCH["finding"][1]
        + "));"
        "CREATE INDEX tasks_search ON tasks USING gin (to_tsvector('english', "
        + PG_SEARCH["task"][1]
        + "));"
        "CREATE INDEX results_search ON results USING gin (to_tsvector('english', "
        + PG_SEARCH["result"][1]
        + "));"
        "CREATE INDEX results_log_search ON results USING gin (to_tsvector('english', "
        + PG_SEARCH["log"][1]
        + "))",
    ),
    (
        "0004_findings_by_kind",
        "CREATE INDEX IF NOT EXISTS findings_by_kind ON findings(kind, observed_at)",
    ),
    (
        "0005_replications",
        """
        CREATE TABLE IF NOT EXISTS replications (
            key TEXT COLLATE "C" PRIMARY KEY,
            purpose TEXT COLLATE "C" NOT NULL,
            fact_key TEXT COLLATE "C" NOT NULL,
            conflict TEXT COLLATE "C",
            task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks(id),
            deploy_task TEXT COLLATE "C" REFERENCES tasks(id),
            gpu TEXT COLLATE "C",
            origins TEXT COLLATE "C" NOT NULL,
            hosts TEXT COLLATE "C" NOT NULL,
            note TEXT COLLATE "C",
            created_at TEXT COLLATE "C" NOT NULL,
            cancelled_by TEXT COLLATE "C"
        );
        CREATE TABLE IF NOT EXISTS replication_tasks (
            task_id TEXT COLLATE "C" PRIMARY KEY REFERENCES tasks(id),
            replication TEXT COLLATE "C" NOT NULL REFERENCES replications(key)
        )
        """,
    ),
    (
        "0006_tokens",
        """
        CREATE TABLE IF NOT EXISTS tokens (
            hash TEXT COLLATE "C" PRIMARY KEY,
            name TEXT COLLATE "C" NOT NULL UNIQUE,
            role TEXT COLLATE "C" NOT NULL,
            created_at TEXT COLLATE "C" NOT NULL
        )
        """,
    ),
)

# Every table a lab copy moves, in the order a copy must fill them (a row's references first),
# with the columns it moves (tasks keep their rowid, so their order survives the copy) and the
# columns that order its rows for the checksum.
TABLES: tuple[tuple[str, str, str], ...] = (
    (
        "tasks",
        "rowid, id, kind, title, spec, state, priority, requires, attempts, max_attempts, "
        "dedupe_key, epoch, holder, claimed_at, expires_at, note, created_at, updated_at",
        "rowid",
    ),
    ("task_deps", "task_id, depends_on", "task_id, depends_on"),
    ("gpu_leases", "task_id, epoch, host, gpu_uuid, gpu_name, gb, exclusive", "task_id"),
    ("agents", "id, capabilities, registered_at, last_seen", "id"),
    ("events", "seq, task_id, at, actor, action, epoch, detail", "seq"),
    (
        "results",
        "id, task_id, epoch, agent, status, payload, note, idempotency_key, created_at",
        "id",
    ),
    ("findings", "id, kind, subject, predicate, body, agent, task_id, observed_at", "id"),
    ("evidence_checks", "finding_id, idx, status, message, score", "finding_id, idx"),
    (
        "replications",
        "key, purpose, fact_key, conflict, task_id, deploy_task, gpu, origins, hosts, note, "
        "created_at, cancelled_by",
        "key",
    ),
    ("replication_tasks", "task_id, replication", "task_id"),
    ("tokens", "hash, name, role, created_at", "hash"),
)
# Columns the database numbers itself, to move past the copied numbers after a copy.
NUMBERED = (("tasks", "rowid"), ("events", "seq"))
