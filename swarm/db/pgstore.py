"""The PostgreSQL store, for labs spanning several hosts: `SWARM_DB=postgresql://…`.

Same interface and SQL as the SQLite store. The differences are about overlap: SQLite lets one
writer in at a time, PostgreSQL runs writers side by side at READ COMMITTED, so the library
locks what it reads-then-changes (`conn.dialect`), and this store retries a transaction that
lost a race the database detected (serialization failure, deadlock, or a unique key another
writer took first: on retry the function sees that row and answers as it would on SQLite).
Connections come from a pool (psycopg_pool), never one per call.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from swarm.core.errors import StoreUnavailable
from swarm.db.conn import POSTGRES, Conn, Cursor
from swarm.db.migrations import POSTGRES_MIGRATIONS

T = TypeVar("T")

IDLE = psycopg.pq.TransactionStatus.IDLE
RETRIES = 8
MIGRATION_LOCK = 0x5357_4D00  # an advisory lock key of our own: "SWM\0"
RACES = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.UniqueViolation)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@functools.lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """The library's `?` placeholders as psycopg's `%s` (a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgRow:
    """A row that indexes like sqlite3.Row: by position or by column name."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._index[key]]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: PgRow(values, index)


class PgCursor:
    """A cursor in pipeline mode: statements go out without waiting; reading a row or the row
    count waits for the results sent so far."""

    def __init__(self, cursor: psycopg.Cursor[Any], pipeline: psycopg.Pipeline) -> None:
        self._cursor = cursor
        self._pipeline = pipeline

    @property
    def rowcount(self) -> int:
        self._pipeline.sync()
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor.fetchall())


class PgConnection:
    """A pooled psycopg connection, in pipeline mode, seen through the Conn interface.

    Pipelining matters on a network: a statement whose result nobody reads (an event insert, the
    COMMIT) costs no round trip of its own, so a claim waits on 5 round trips instead of 8.
    """

    dialect = POSTGRES

    def __init__(self, raw: psycopg.Connection[Any], pipeline: psycopg.Pipeline) -> None:
        self.raw = raw
        self.pipeline = pipeline

    def execute(self, sql: str, params: Any = (), /) -> Cursor:
        return PgCursor(self.raw.execute(to_pyformat(sql), params), self.pipeline)

    def executemany(self, sql: str, params: Iterable[Any], /) -> Cursor:
        cursor = self.raw.cursor()
        cursor.executemany(to_pyformat(sql), list(params))
        return PgCursor(cursor, self.pipeline)


def _configure(raw: psycopg.Connection[Any]) -> None:
    """Each new pooled connection: a COMMIT returns only once the WAL is flushed, whatever the
    server's default. With synchronous_commit=off a server crash lost confirmed reports and
    handed one epoch to two agents (issue #17); a claim costs one WAL flush more for it."""
    raw.execute("SET synchronous_commit = on")


class PostgresStore:
    """A connection pool to one PostgreSQL database; `write` and `read` as on SQLite."""

    dialect = POSTGRES

    def __init__(self, url: str, max_connections: int = 8, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.location = redact(url)
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            # autocommit: we send BEGIN with the isolation each transaction needs, and COMMIT
            kwargs={"autocommit": True, "row_factory": _row_factory},
            configure=_configure,
            open=False,
            name="swarm",
        )
        try:
            self.pool.open(wait=True, timeout=connect_timeout_s)
        except (PoolTimeout, psycopg.Error) as exc:
            self.pool.close()
            raise StoreUnavailable(
                f"cannot connect to {self.location} within {connect_timeout_s:g} s; "
                "is PostgreSQL running there and the URL right (user, password, database)?"
            ) from exc
        self._migrate()

    def _applied(self, conn: Conn) -> list[str]:
        if conn.execute("SELECT to_regclass('migrations')").fetchone()[0] is None:
            return []
        return [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY name")]

    def _migrate(self) -> None:
        names = [name for name, _ in POSTGRES_MIGRATIONS]
        if self.read(self._applied) == names:
            return  # the usual open: no lock, nothing to write

        def apply(conn: Conn) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations "
                '(name TEXT COLLATE "C" PRIMARY KEY, applied_at TEXT NOT NULL)'
            )
            done = self._applied(conn)  # again, under the lock
            if done != names[: len(done)]:
                raise StoreUnavailable(
                    f"{self.location} has migrations {done}, this swarm knows {names}: "
                    "upgrade swarm before opening this database"
                )
            for name, sql in POSTGRES_MIGRATIONS[len(done) :]:
                for statement in filter(str.strip, sql.split(";")):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO migrations VALUES (?, to_char(now() AT TIME ZONE 'UTC', "
                    '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\'))',
                    (name,),
                )

        self.write(apply)

    def _transaction(self, begin: str, fn: Callable[[Conn], T]) -> T:
        delay = 0.001
        for attempt in range(RETRIES):
            try:
                with self.pool.connection() as raw:
                    try:
                        with raw.pipeline() as pipeline:  # leaving it waits for every result
                            raw.execute(begin)
                            value = fn(PgConnection(raw, pipeline))
                            raw.execute("COMMIT")
                    except BaseException:
                        if not raw.closed and raw.info.transaction_status != IDLE:
                            raw.execute("ROLLBACK")
                        raise
                    return value
            except RACES as exc:
                if attempt == RETRIES - 1:
                    raise StoreUnavailable(
                        f"{self.location}: still losing a race after {RETRIES} tries: {exc}"
                    ) from exc
                time.sleep(random.uniform(0, delay))  # full jitter, as on SQLite
                delay = min(delay * 2, 0.05)
            except (psycopg.Error, PoolTimeout) as exc:
                raise StoreUnavailable(f"{self.location}: {exc}") from exc
        raise AssertionError("unreachable")

    def write(self, fn: Callable[[Conn], T]) -> T:
        """Run fn in one READ COMMITTED transaction; returns after COMMIT. fn may re-run."""
        return self._transaction("BEGIN", fn)

    def read(self, fn: Callable[[Conn], T]) -> T:
        """Run fn on one snapshot (REPEATABLE READ, read only)."""
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", fn)

    def close(self) -> None:
        self.pool.close()
