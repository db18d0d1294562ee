"""The lab's housekeeping: readme, migrate, serve, search, export and the git hooks."""

from __future__ import annotations

import sys
from pathlib import Path

from swarm.cli import base
from swarm.cli.base import Commands, Context


def add_readme(cli: Commands) -> None:
    p = cli.add(
        "readme", cmd_readme, "regenerate the README dashboard regions from the store and facts/"
    )
    p.add_argument(
        "--check", action="store_true", help="exit 1 when the README is out of date; write nothing"
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite regions that were edited by hand"
    )
    p.add_argument("--file", help="the README to update (default: README.md of this repo)")


def cmd_readme(ctx: Context) -> None:
    from swarm.present import readme

    repo = base.repo()
    path = Path(ctx.args.file) if ctx.args.file else repo / "README.md"
    current, updated = readme.regenerate(
        ctx.store, repo, path, base.now(), ctx.args.force, write=not ctx.args.check
    )
    changed = updated != current
    if ctx.args.check:
        ctx.exit_code = 1 if changed else 0
        ctx.emit(
            {"up_to_date": not changed},
            lambda: (
                f"{path.name} is out of date: run `swarm readme`"
                if changed
                else f"{path.name} is up to date"
            ),
        )
        return
    ctx.emit(
        {"changed": changed}, lambda: f"{path.name} " + ("updated" if changed else "unchanged")
    )


def add_migrate(cli: Commands) -> None:
    p = cli.add(
        "migrate",
        cmd_migrate,
        "copy this lab into another, empty database (SQLite <-> PostgreSQL), verified by counts "
        "and checksums",
    )
    p.add_argument(
        "--to",
        required=True,
        metavar="URL_OR_PATH",
        help="the target: a postgresql:// URL or a SQLite file path; it must hold no lab yet",
    )


def cmd_migrate(ctx: Context) -> None:
    from swarm.core.settings import resolve_db
    from swarm.db.store import open_store
    from swarm.db.transfer import copy_lab

    target = open_store(resolve_db(ctx.args.to, {}, Path.cwd()))
    try:
        report = copy_lab(ctx.store, target)
    finally:
        target.close()
    ctx.emit(
        report,
        lambda: "\n".join(
            [f"copied {report.source} -> {report.target}"]
            + [f"  {t.table:<16} {t.rows:>8} rows  sha256 {t.sha256[:16]}" for t in report.tables]
            + [f"verified: {report.rows} rows; counts and checksums agree on both sides"]
        ),
    )


def add_serve(cli: Commands) -> None:
    p = cli.add(
        "serve", cmd_serve, "the MCP server: stdio (default, one per agent) or --http (shared)"
    )
    p.add_argument(
        "--http", action="store_true", help="serve Streamable HTTP (bearer token) instead of stdio"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="bind address for --http (default: loopback only)"
    )
    p.add_argument("--port", type=int, default=8765, help="port for --http (default 8765)")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="a Host header clients use (repeatable); required when --host is not loopback",
    )


def cmd_serve(ctx: Context) -> None:
    a = ctx.args
    if a.http:
        from swarm.core.limits import Port, check
        from swarm.mcp import http as mcp_http

        port = check(Port, a.port, "--port")
        mcp_http.serve_http(ctx.settings, a.host, port, tuple(a.allowed_host))
    else:
        from swarm.mcp import server as mcp_server

        mcp_server.serve_stdio(ctx.settings)


def add_search(cli: Commands) -> None:
    p = cli.add(
        "search",
        cmd_search,
        "full-text search of findings, task titles and notes, results' notes and job logs",
    )
    p.add_argument("text", help="words to find (all of them, else any; stems match: overflows)")
    p.add_argument(
        "--kind",
        action="append",
        choices=("finding", "task", "result", "log"),
        help="only this kind of document (repeatable)",
    )
    p.add_argument("--limit", type=int, default=20, help="at most this many hits (1-100)")


def cmd_search(ctx: Context) -> None:
    from swarm.db import search
    from swarm.present import render

    a = ctx.args
    found = search.search(ctx.store, a.text, a.kind or (), a.limit)
    ctx.emit(found, lambda: render.search_results(found))


def add_export(cli: Commands) -> None:
    p = cli.add(
        "export", cmd_export, "write a table of the lab as JSON, CSV or newline-delimited JSON"
    )
    p.add_argument("table", choices=("tasks", "results", "findings", "events"))
    p.add_argument("--format", choices=("json", "csv", "nljson"), default="json")
    p.add_argument("-o", "--output", help="file to write (atomically; default: stdout)")


def cmd_export(ctx: Context) -> None:
    from swarm.db import export

    a = ctx.args
    if a.output in (None, "-"):
        export.export(ctx.store, a.table, a.format, sys.stdout)
        return
    from typing import TextIO, cast

    from swarm.core.atomic import atomic_open

    path = Path(a.output)
    with atomic_open(path) as out:  # a reader sees the whole export or none of it
        rows = export.export(ctx.store, a.table, a.format, cast(TextIO, out))  # text mode
    print(f"wrote {rows} {a.table} rows to {path} ({a.format})", file=sys.stderr)


def add_hooks_install(cli: Commands) -> None:
    cli.add("install", cmd_hooks_install, "enable .githooks/ in this clone (idempotent)")


def cmd_hooks_install(ctx: Context) -> None:
    from swarm.lab import hooks

    changed = hooks.install(base.repo())
    ctx.emit({"changed": changed}, lambda: "\n".join(changed) or "hooks already installed")


def add_hooks_check(cli: Commands) -> None:
    p = cli.add(
        "check",
        cmd_hooks_check,
        "check every commit of a range (CI, pre-push); exit 1 on any problem",
    )
    p.add_argument(
        "revs", nargs="+", metavar="REV_RANGE", help="e.g. origin/main..HEAD (git log syntax)"
    )


def cmd_hooks_check(ctx: Context) -> None:
    import subprocess

    from swarm.core.errors import SwarmError
    from swarm.lab import hooks

    repo = base.repo()
    try:
        policy = hooks.Policy.load(repo)
        report = hooks.check_range(policy, ctx.args.revs, cwd=repo)
    except (hooks.PolicyError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise SwarmError(f"cannot check {' '.join(ctx.args.revs)}: {detail.strip()}") from exc
    lines = [f"{sha[:12]}: {p}" for sha, found in report.items() for p in found]
    ctx.emit(
        {"commits": report, "ok": not report},
        lambda: "\n".join(lines) or "every commit in the range is clean",
    )
    if report:
        ctx.exit_code = 1
        if not ctx.args.json:
            print(hooks._fixes(policy), file=sys.stderr)


def register(cli: Commands) -> None:
    for add in (add_readme, add_migrate, add_serve, add_search, add_export):
        add(cli)
    hooks = cli.group("hooks", "the attribution git hooks")
    add_hooks_install(hooks)
    add_hooks_check(hooks)
