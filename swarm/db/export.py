"""`swarm export`: a table of the lab as JSON, CSV or newline-delimited JSON, for people's own tools.

SQLite tables are read through sqlite-utils (`rows_where`); PostgreSQL's with the same columns
and order, so an export reads the same from either backend.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from typing import Any, Literal, TextIO, cast

from swarm.core.errors import InvalidInput
from swarm.db.migrations import TABLES
from swarm.db.store import SQLITE, Conn, Store

Format = Literal["json", "csv", "nljson"]
FORMATS: tuple[Format, ...] = ("json", "csv", "nljson")
EXPORTABLE = ("tasks", "results", "findings", "events")
# Columns holding JSON text: nested values in json/nljson, the text itself in CSV.
JSON_COLUMNS = {"spec", "requires", "payload", "body"}


def _columns(table: str) -> tuple[list[str], str]:
    _, columns, key = next(t for t in TABLES if t[0] == table)
    names = [c.strip() for c in columns.split(",") if c.strip() != "rowid"]
    # tasks are ordered by insertion: SQLite's implicit rowid, PostgreSQL's explicit one
    return names, key


def read_rows(store: Store, table: str) -> list[dict[str, Any]]:
    """Every row of an exportable table, in its stable order; raises InvalidInput."""
    if table not in EXPORTABLE:
        raise InvalidInput(f"cannot export {table!r}; tables: {', '.join(EXPORTABLE)}")
    names, key = _columns(table)

    def read(conn: Conn) -> list[dict[str, Any]]:
        if conn.dialect is SQLITE:
            import sqlite_utils

            db = sqlite_utils.Database(
                cast(sqlite3.Connection, conn), recursive_triggers=False, execute_plugins=False
            )
            return list(db.table(table).rows_where(select=", ".join(names), order_by=key))
        rows = conn.execute(f"SELECT {', '.join(names)} FROM {table} ORDER BY {key}")
        return [dict(zip(names, row, strict=True)) for row in rows]

    return store.read(read)


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if k in JSON_COLUMNS and v else v for k, v in row.items()}


def export(store: Store, table: str, fmt: str, out: TextIO) -> int:
    """Write every row of table to out as fmt; how many rows. Raises InvalidInput."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    rows = read_rows(store, table)
    write(rows, _columns(table)[0], fmt, out)
    return len(rows)


def write(rows: list[dict[str, Any]], names: list[str], fmt: str, out: TextIO) -> None:
    """rows as fmt on out (CSV with a header row even when there are none)."""
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif fmt == "nljson":
        for row in rows:
            out.write(json.dumps(_decoded(row), sort_keys=True, ensure_ascii=False) + "\n")
    elif fmt == "json":
        out.write(json.dumps([_decoded(r) for r in rows], sort_keys=True, ensure_ascii=False))
        out.write("\n")
    else:
        raise InvalidInput(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
