"""The `swarm` command: assembles the command modules into one parser and maps errors to exit codes.

Each module of swarm/cli/ defines its commands' arguments beside their handlers and a
`register(cli)`; the exit codes are swarm.core.errors' table (`swarm --help` ends with it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from swarm.cli import admin, agents, base, bench, deploy, facts, queue, triage, work
from swarm.cli.base import Commands, Context, Parser, UsageError

# In `swarm --help` order: the queue and its agents first, the lab's tools, then housekeeping.
GROUPS = (queue, agents, facts, triage, work, deploy, bench, admin)


def build_parser() -> Parser:
    parser = Parser(
        prog="swarm",
        description="Task queue and lab tools for a swarm of agents.",
        epilog=base.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    cli = Commands(sub, base.common_flags())
    for group in GROUPS:
        group.register(cli)
    return parser


def _fail(code: int, kind: str, message: str, as_json: bool) -> int:
    if as_json:
        print(
            json.dumps(
                {
                    "schema_version": 1,
                    "error": {"type": kind, "message": message, "exit_code": code},
                }
            )
        )
    else:
        print(f"swarm: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    # Text that came in as non-UTF-8 argv (surrogate escapes) must not crash the printing of a
    # message about it.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    from pydantic import ValidationError

    from swarm.core import errors
    from swarm.core.errors import SwarmError
    from swarm.core.limits import check_numbers, check_text, describe

    try:
        for i, arg in enumerate(argv, 1):  # non-UTF-8 bytes arrive as surrogates: refuse them here
            check_text(arg, f"argument {i}")
        args = build_parser().parse_args(argv)
        check_numbers(vars(args))
        ctx = Context(args)
        args.fn(ctx)
    except UsageError as exc:
        return _fail(errors.USAGE, "UsageError", str(exc), as_json)
    except SwarmError as exc:
        return _fail(exc.exit_code, type(exc).__name__, str(exc), as_json)
    except ValidationError as exc:  # a model built from a flag: the same wording as MCP's
        return _fail(errors.InvalidInput.exit_code, "InvalidInput", describe(exc), as_json)
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into an unwind (tools/deploy.py)
        return _fail(
            errors.INTERRUPTED,
            "Interrupted",
            "stopped by a signal; what it started was removed",
            as_json,
        )
    except Exception as exc:  # a bug: still one line (and JSON with --json), never a traceback
        if os.environ.get("SWARM_DEBUG"):
            raise
        message = f"internal error (a bug; SWARM_DEBUG=1 shows where): {type(exc).__name__}: {exc}"
        return _fail(errors.SwarmError.exit_code, "InternalError", message, as_json)
    return ctx.exit_code
