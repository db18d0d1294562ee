"""What the library's SQL runs against, whichever database holds the lab: the dialect, the
connection and cursor a transaction function gets, and the Store interface both stores implement
(swarm.db.store for SQLite, swarm.db.pgstore for PostgreSQL). Kept apart from either store so
that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Dialect:
    """What the library's SQL needs to know about the database it runs on."""

    ids_agg: str  # an aggregate joining a column's ids with \x1f, {} for the column
    lock_rows: str  # after a SELECT whose rows the transaction goes on to change
    skip_locked: str  # after a SELECT of rows to take, passing over rows others hold
    claim_batch: int  # ready tasks offered to one claim statement
    host_lock: str | None  # serialises GPU leasing on one host (? = a key), if writers overlap
    renumber: str | None  # after copying rows in: next {column} of {table} follows the copies
    refresh_stats: str | None  # after a bulk load, so the planner sees the rows (else minutes)


# SQLite serialises writers (BEGIN IMMEDIATE), so nothing needs locking and the first ready task
# is always free to take.
SQLITE = Dialect(
    ids_agg="group_concat({}, char(31))",
    lock_rows="",
    skip_locked="",
    claim_batch=1,
    host_lock=None,
    renumber=None,
    refresh_stats=None,
)
# PostgreSQL writers overlap: rows a transaction changes after reading are locked, claims pass
# over tasks another claim holds, and GPU leases on one host are taken under an advisory lock.
POSTGRES = Dialect(
    ids_agg="string_agg({}, chr(31))",
    lock_rows=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    claim_batch=16,
    host_lock="SELECT pg_advisory_xact_lock(hashtext(?))",
    renumber="SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
    "coalesce(max({column}), 0) + 1, false) FROM {table}",
    # Until autovacuum analyzes a freshly filled table (a minute or more), the planner thinks it
    # is empty and a claim scans every pending task instead of taking the first by index.
    refresh_stats="ANALYZE",
)


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The connection a transaction function gets: sqlite3's, or the PostgreSQL adapter.

    Rows answer both row[0] and row["name"], and dict(row) gives the columns.
    """

    @property
    def dialect(self) -> Dialect: ...

    def execute(self, sql: str, params: Any = (), /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Any], /) -> Cursor: ...


Row = Any  # sqlite3.Row or swarm.db.pgstore.PgRow: both index by position and by column name


class Store(Protocol):
    """A lab database: run a function in a write transaction or on a read snapshot."""

    dialect: Dialect
    location: str  # what to show a person: the file, or the URL without its password

    def write(self, fn: Callable[[Conn], T]) -> T: ...

    def read(self, fn: Callable[[Conn], T]) -> T: ...

    def close(self) -> None: ...
