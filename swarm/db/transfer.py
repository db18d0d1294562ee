"""Copy a whole lab between stores (SQLite <-> PostgreSQL): `swarm migrate --to URL`.

Every table moves row for row in one write transaction on the target (all or nothing), keeping
the numbers the database assigned (task order, event sequence). The copy is then verified, not
assumed: both sides are read again and must agree on each table's row count and on a checksum
of its rows in key order.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

from swarm.core.errors import Conflict, StoreUnavailable
from swarm.db.migrations import NUMBERED, TABLES
from swarm.db.store import Conn, Store

Tally = dict[str, tuple[int, str]]  # table -> (rows, sha256 of its rows in key order)


class TableCopy(BaseModel):
    table: str
    rows: int
    sha256: str


class MigrateReport(BaseModel):
    source: str
    target: str
    tables: tuple[TableCopy, ...]
    verified: bool  # counts and checksums read back from both sides agree (else an error)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def _rows(conn: Conn, table: str, columns: str, key: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(f"SELECT {columns} FROM {table} ORDER BY {key}")]


def _digest(rows: list[tuple[object, ...]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def _tally_in(conn: Conn) -> Tally:
    out = {}
    for table, columns, key in TABLES:
        rows = _rows(conn, table, columns, key)
        out[table] = (len(rows), _digest(rows))
    return out


def tally(store: Store) -> Tally:
    """Each table's row count and checksum, on one snapshot."""
    return store.read(_tally_in)


def copy_lab(source: Store, target: Store) -> MigrateReport:
    """Copy every row of source into the empty target, then verify both sides agree.

    All or nothing: the checks run inside the target's transaction, so a refused or failed
    migration leaves the target as it was. Raises Conflict when the target already holds a lab
    or the source changed during the copy, StoreUnavailable when the copy does not verify.
    Run it while no agent writes to the source (its snapshot is what moves).
    """
    if source.location == target.location:
        raise Conflict(f"source and target are the same database ({source.location})")
    snapshot = source.read(
        lambda conn: {table: _rows(conn, table, cols, key) for table, cols, key in TABLES}
    )

    def fill(conn: Conn) -> None:
        held = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t, _, _ in TABLES}
        if any(held.values()):
            busy = ", ".join(f"{n} {t}" for t, n in held.items() if n)
            raise Conflict(
                f"{target.location} already holds a lab ({busy}); migrate into an empty database"
            )
        for table, columns, _ in TABLES:
            marks = ",".join("?" * len(columns.split(",")))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
            if snapshot[table]:
                conn.executemany(sql, snapshot[table])
        if conn.dialect.renumber:
            for table, column in NUMBERED:
                conn.execute(conn.dialect.renumber.format(table=table, column=column))
        if conn.dialect.refresh_stats:
            conn.execute(conn.dialect.refresh_stats)
        _verify(_tally_in(conn), expected, target.location)  # before COMMIT: all or nothing
        if tally(source) != expected:
            raise Conflict(
                f"{source.location} changed while it was copied (an agent wrote to it); "
                f"{target.location} was left as it was: stop the agents and migrate again"
            )

    expected = {table: (len(rows), _digest(rows)) for table, rows in snapshot.items()}
    target.write(fill)
    _verify(tally(target), expected, target.location)  # read back once committed, too
    return MigrateReport(
        source=source.location,
        target=target.location,
        tables=tuple(TableCopy(table=t, rows=n, sha256=d) for t, (n, d) in expected.items()),
        verified=True,
    )


def _verify(copied: Tally, expected: Tally, target: str) -> None:
    if copied != expected:
        wrong = [t for t in expected if copied.get(t) != expected[t]]
        raise StoreUnavailable(
            f"the copy in {target} does not match the source in: {', '.join(wrong)}"
        )
