"""Named, append-only schema migrations, applied in order when the store opens.

Never edit or reorder an entry that has shipped: add a new one.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, str], ...] = (
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
)
