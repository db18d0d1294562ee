"""The lab store: the one place a database is opened. SQLite (one file per host, the default) is
here; PostgreSQL (several hosts) is in swarm.db.pgstore, behind the same `write`/`read` interface
(swarm.db.conn).

The library's SQL is written once for both: `?` placeholders, portable expressions, and the few
things that must differ (locking clauses, string aggregation) taken from `conn.dialect`.

On SQLite every write runs in `BEGIN IMMEDIATE` (a deferred read-then-write gets SQLITE_BUSY
without waiting for busy_timeout) and is retried with jitter when SQLite still reports busy:
measured on this kind of machine, busy_timeout alone lets "database is locked" escape under fsync
pressure (shared/research/queue_anchors.md, sections 3 and 7).
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from swarm.core.errors import StoreUnavailable
from swarm.core.settings import is_postgres
from swarm.db.conn import POSTGRES as POSTGRES
from swarm.db.conn import SQLITE as SQLITE
from swarm.db.conn import Conn as Conn
from swarm.db.conn import Cursor as Cursor
from swarm.db.conn import Dialect as Dialect
from swarm.db.conn import Row as Row
from swarm.db.conn import Store as Store
from swarm.db.migrations import MIGRATIONS

T = TypeVar("T")

# Filesystems where SQLite's locking or WAL shared memory cannot be trusted across hosts.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ncpfs",
        "lustre",
        "gpfs",
        "ceph",
        "glusterfs",
        "beegfs",
        "davfs",
        "fuse.sshfs",
        "sshfs",
        "fuse.ceph",
        "fuse.glusterfs",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.gcsfuse",
    }
)
RETRY_DEADLINE_S = 60.0


def open_store(location: str | Path, busy_timeout_ms: int = 30_000) -> Store:
    """The store at a file path (SQLite) or a postgresql:// URL."""
    if is_postgres(location):
        try:
            from swarm.db.pgstore import PostgresStore  # psycopg loads only for PostgreSQL labs
        except ImportError as exc:
            raise StoreUnavailable(
                f"a PostgreSQL lab needs psycopg ({exc.name} is missing): "
                "pip install 'swarm[postgres]' (or -e '.[postgres]' in a clone)"
            ) from exc
        return PostgresStore(str(location))
    return SqliteStore(Path(location), busy_timeout_ms)


def filesystem_type(path: Path, mounts: str) -> str | None:
    """The type of the mount holding path, from /proc/mounts text (longest mount point wins)."""
    best, best_len = None, -1
    target = str(path)
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) > best_len:
            best, best_len = fields[2], len(mount_point)
    return best


def refuse_network_filesystem(path: Path, mounts: str | None = None) -> None:
    """Raise StoreUnavailable when path lies on a network filesystem."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text(encoding="utf-8")
        except OSError:
            return  # not Linux: nothing to read, nothing to refuse
    fstype = filesystem_type(path, mounts)
    if fstype in NETWORK_FILESYSTEMS:
        raise StoreUnavailable(
            f"{path} is on a {fstype} filesystem: SQLite must not be shared over a network "
            "filesystem (locks and WAL shared memory break). Put SWARM_DB on a local disk, or "
            "use one `swarm serve --http` coordinator or PostgreSQL for several hosts."
        )


def _is_busy(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _disk_full(path: Path) -> str:
    """A hint when the database's disk has no space left: SQLite then says only 'disk I/O
    error' or 'database or disk is full'."""
    try:
        if os.statvfs(path.parent).f_bavail == 0:
            return " (the disk is full: free some space and run it again; nothing was changed)"
    except OSError:
        pass
    return ""


class _SqliteConnection(sqlite3.Connection):
    dialect = SQLITE


class SqliteStore:
    """One connection to the lab database; `write` and `read` run a function in a transaction.

    Threads may share it (the MCP server's tools run on worker threads): one transaction at a
    time holds the connection, so none interleaves its statements with another's.
    """

    dialect = SQLITE

    def __init__(self, path: Path, busy_timeout_ms: int = 30_000) -> None:
        self.path = path
        self.location = str(path)
        self._lock = threading.RLock()  # a nested call fails as SQLite says, never hangs
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {path.parent}: {exc}") from exc
        refuse_network_filesystem(path.parent)
        try:
            # isolation_level=None: we issue BEGIN ourselves; Python's implicit deferred BEGIN
            # would turn every claim into a read-then-upgrade (queue_anchors.md, pitfall 3).
            self.conn = sqlite3.connect(
                path,
                isolation_level=None,
                timeout=busy_timeout_ms / 1000,
                check_same_thread=False,
                factory=_SqliteConnection,
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {path}: {exc}") from exc
        self.conn.row_factory = sqlite3.Row
        self._retry(self._configure)
        self._migrate()

    def _configure(self) -> None:
        mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreUnavailable(f"{self.path}: WAL mode unavailable (got {mode!r})")
        # NORMAL: no fsync per commit; safe from corruption, may lose the last commits on power
        # loss, which the lease then re-delivers (queue_anchors.md, section 2).
        self.conn.execute("PRAGMA synchronous=NORMAL")
        # A checkpoint runs inside some writer's COMMIT and copies every page written since the
        # last one. Claims rewrite the same few pages over and over, so checkpointing every
        # 10,000 pages instead of 1,000 copies far fewer pages in all (measured: half the
        # commit cost at one worker); the WAL is truncated back to 64 MiB after each.
        self.conn.execute("PRAGMA wal_autocheckpoint=10000")
        self.conn.execute("PRAGMA journal_size_limit=67108864")
        self.conn.execute("PRAGMA foreign_keys=ON")

    def _migrate(self) -> None:
        if self.conn.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
            return

        def apply(conn: Conn) -> None:
            done = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
            conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
            )
            for name, step in MIGRATIONS[done:]:
                if isinstance(step, str):
                    for statement in filter(str.strip, step.split(";")):
                        conn.execute(statement)
                else:
                    step(conn)
                conn.execute(
                    "INSERT INTO migrations VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                    (name,),
                )
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

        self.write(apply)

    def _retry(self, fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + RETRY_DEADLINE_S
        delay = 0.001
        while True:
            try:
                return fn()
            except sqlite3.DatabaseError as exc:
                if not _is_busy(exc):
                    raise StoreUnavailable(f"{self.path}: {exc}{_disk_full(self.path)}") from exc
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"{self.path} stayed locked for {RETRY_DEADLINE_S:.0f} s; "
                        "is a process holding a long transaction?"
                    ) from exc
                time.sleep(random.uniform(0, delay))  # full jitter
                delay = min(delay * 2, 0.05)

    def _transaction(self, begin: str, fn: Callable[[Conn], T]) -> T:
        def attempt() -> T:
            with self._lock:  # held per attempt: the back-off between attempts lets others in
                self.conn.execute(begin)
                try:
                    value = fn(self.conn)
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
                return value

        return self._retry(attempt)

    def write(self, fn: Callable[[Conn], T]) -> T:
        """Run fn in one short write transaction; returns only after COMMIT. fn may re-run."""
        return self._transaction("BEGIN IMMEDIATE", fn)

    def read(self, fn: Callable[[Conn], T]) -> T:
        """Run fn on one consistent snapshot."""
        return self._transaction("BEGIN", fn)

    def close(self) -> None:
        self.conn.close()
