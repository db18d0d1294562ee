"""What every command module shares: the parsed-args Context (settings and store opened
once), the Commands registry that gives each command the common flags and the exit-code epilog,
input readers (JSON, @FILE, stdin under the limits) and small helpers (who, repo, agent).

Imports stay inside the functions so that `swarm claim` pays only for what it uses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from pydantic import BaseModel

    from swarm.core.settings import Settings
    from swarm.db.store import Store
    from swarm.queue.remote import RemoteLab


def epilog() -> str:
    """The exit-code table every --help ends with, rendered from swarm.core.errors."""
    from swarm.core.errors import exit_codes

    lines = [""]
    for cell in (f"{row.code} {row.label}" for row in exit_codes()):
        if lines[-1] and len(lines[-1]) + len(cell) > 72:
            lines.append("")
        lines[-1] += f"   {cell}" if lines[-1] else f"  {cell}"
    return "exit codes:\n" + "\n".join(lines)


class Commands:
    """Where a command module adds its commands: each gets the common flags (--json, --server,
    --token, --db), its help as description and the exit-code table as epilog."""

    def __init__(self, sub: Any, common: argparse.ArgumentParser) -> None:
        self.sub = sub  # an argparse subparsers action
        self.common = common

    def add(self, name: str, fn: Callable[[Context], None], help: str) -> Parser:
        p: Parser = self.sub.add_parser(
            name,
            parents=[self.common],
            help=help,
            description=help,
            epilog=epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(fn=fn)
        return p

    def group(self, name: str, help: str) -> Commands:
        """A command made of subcommands (`swarm agent register`); they land in NAME_command."""
        return self.nested(self.sub.add_parser(name, help=help), f"{name}_command")

    def nested(self, parser: argparse.ArgumentParser, dest: str, required: bool = True) -> Commands:
        """Subcommands under a command that also runs alone when required is False (triage)."""
        sub = parser.add_subparsers(dest=dest, required=required, parser_class=Parser)
        return Commands(sub, self.common)


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def now() -> datetime:
    return datetime.now(UTC)


REMOTE_COMMANDS = ("add", "claim", "heartbeat", "release", "report", "ls", "show", "agent register")


class Context:
    """What every command gets: parsed args, settings resolved once, the store opened once."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.exit_code = 0
        self._store: Store | None = None
        self._remote: RemoteLab | None = None

    @property
    def settings(self) -> Settings:
        from swarm.core.settings import load_settings

        return load_settings(self.args.db)

    @property
    def remote(self) -> RemoteLab | None:
        """The lab through `swarm serve --http`, when --server (or SWARM_SERVER) names one."""
        server = self.args.server or os.environ.get("SWARM_SERVER")
        if not server or self._remote is not None:
            return self._remote
        if self.args.server and self.args.db:
            raise UsageError("give --server (a remote lab) or --db (a database here), not both")
        from swarm.queue.remote import RemoteLab

        token = self.args.token or os.environ.get("SWARM_TOKEN")
        if not token:
            raise UsageError(
                "--server needs the token `swarm serve --http` printed: --token or SWARM_TOKEN"
            )
        agent = getattr(self.args, "agent", None) or os.environ.get("SWARM_AGENT")
        self._remote = RemoteLab(server, token, agent)
        return self._remote

    @property
    def store(self) -> Store:
        if self.args.server or os.environ.get("SWARM_SERVER"):
            raise UsageError(
                f"`swarm {self.args.command}` needs the lab database; through --server only "
                f"{', '.join(REMOTE_COMMANDS)} work (drop --server/SWARM_SERVER on a host that "
                "has the database)"
            )
        if self._store is None:
            from swarm.db.store import open_store

            self._store = open_store(self.settings.db)
        return self._store

    def emit(self, model: BaseModel | dict[str, Any], text: Callable[[], str]) -> None:
        if self.args.json:
            if isinstance(model, dict):
                from swarm import SCHEMA_VERSION

                print(strict_json({"schema_version": SCHEMA_VERSION, **model}))
            else:
                print(model.model_dump_json())  # pydantic writes NaN/inf as null
        else:
            print(text())


def strict_json(value: Any) -> str:
    """JSON that any parser reads: a NaN or infinity (a row stored before the limits) is null."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except ValueError:
        return json.dumps(_finite_only(value), sort_keys=True, allow_nan=False)


def _finite_only(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_only(v) for v in value]
    return value


def agent(args: argparse.Namespace) -> str:
    agent = getattr(args, "agent", None) or os.environ.get("SWARM_AGENT")
    if not agent:
        raise UsageError("name the agent: --agent NAME or SWARM_AGENT=NAME")
    return str(agent)


def read_text(source: str, field: str, max_bytes: int) -> str:
    """The text of '-' (stdin), '@FILE' or a file path; InvalidInput naming field when it is
    missing, unreadable, not UTF-8 or larger than max_bytes (read no further than that)."""
    from swarm.core.errors import InvalidInput

    where = "stdin" if source == "-" else source.removeprefix("@")
    try:
        if source == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with Path(where).open("rb") as file:
                data = file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise InvalidInput(f"{field} must be at most {max_bytes} bytes (got more in {where})")
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{field} must be UTF-8 text ({where}: {exc.reason} at byte {exc.start})"
        ) from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInput(f"cannot read {field} from {where!a}: {reason}") from exc


def read_any_json(source: str, field: str, max_bytes: int) -> Any:
    """JSON from a literal, '@FILE', a file path or '-' (stdin), under the limits."""
    from swarm.core.limits import parse_json

    literal = source.lstrip().startswith(("{", "["))
    if source == "-" or source.startswith("@") or (not literal and is_file(source)):
        source = read_text(source, field, max_bytes)
    return parse_json(source, field, max_bytes)


def is_file(source: str) -> bool:
    try:
        return Path(source).is_file()
    except (OSError, ValueError):  # a NUL byte or an over-long name: not a file we can read
        return False


def read_json_list(source: str, field: str = "findings") -> list[Any]:
    from swarm.core.limits import MAX_RESULT_BYTES

    value = read_any_json(source, field, MAX_RESULT_BYTES)
    return value if isinstance(value, list) else [value]


def read_json(
    source: str | None, field: str = "spec", max_bytes: int | None = None
) -> dict[str, Any]:
    """JSON object from a literal, '@file', a file path or '-' (stdin)."""
    from swarm.core.errors import InvalidInput
    from swarm.core.limits import MAX_SPEC_BYTES

    if source is None:
        return {}
    value = read_any_json(source, field, max_bytes or MAX_SPEC_BYTES)
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object (got {type(value).__name__})")
    return value


def parse_gpu(text: str, index: int) -> Any:
    from swarm.core.errors import InvalidInput
    from swarm.core.models import GpuInfo

    parts = text.split(":")
    try:
        name, arch, gb = parts
        return GpuInfo(
            index=index,
            name=name,
            uuid=f"manual-{index}-{name}",
            arch=arch,
            memory_total_gb=float(gb),
        )
    except ValueError as exc:
        raise InvalidInput(
            f"--gpu wants NAME:ARCH:GB such as 'RTX Pro 6000:sm_120:96', got {text!r}"
        ) from exc


def register_agent(ctx: Context, agent: str) -> Any:
    from swarm.queue import agents
    from tools.capabilities import detect

    a = ctx.args
    gpus = None
    if getattr(a, "no_gpu", False):
        gpus = ()
    elif getattr(a, "gpu", None):
        gpus = tuple(parse_gpu(text, i) for i, text in enumerate(a.gpu))
    tools = tuple(a.tool) if getattr(a, "tool", None) else None
    caps = detect(host=getattr(a, "host", None), gpus=gpus, tools=tools)
    if getattr(a, "driver", None) or getattr(a, "engine", None):
        from swarm.core.models import Capabilities

        engines = {k: str(v) for k, v in pairs(a.engine or (), "--engine").items()}
        caps = Capabilities.model_validate(
            {**caps.model_dump(), "driver": a.driver, "engines": engines}
        )
    if ctx.remote:
        return ctx.remote.register(caps)
    return agents.register(ctx.store, agent, caps, now())


def scalar(text: str) -> Any:
    """'12.5' -> 12.5, '3' -> 3, 'true'/'false' -> bool, anything else stays text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def pairs(items: Sequence[str], flag: str, typed: bool = True) -> dict[str, Any]:
    """KEY=VALUE pairs; typed: values read as numbers and booleans where they look like them
    (not for a scope, whose normalisers read text: CUDA '12.10' is not the number 12.1)."""
    from swarm.core.errors import InvalidInput

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{flag} wants KEY=VALUE, got {item!r}")
        out[key.strip()] = scalar(value) if typed else value.strip()
    return out


def person() -> str:
    """The person deciding at this CLI, derived, never declared: git's `user.name <user.email>`.
    Decisions are people's, so a shell that runs as an agent (SWARM_AGENT) may not make them."""
    from swarm.core.errors import Forbidden
    from swarm.queue.auth import git_identity

    agent = os.environ.get("SWARM_AGENT")
    if agent:
        raise Forbidden(
            f"decisions are people's, and this shell runs as agent {agent!r} (SWARM_AGENT): "
            "unset it to decide as yourself (your git identity), or use the web page"
        )
    found = git_identity()
    if found is None:
        raise UsageError("who is deciding? set `git config user.name` and `user.email`")
    return found


def actor() -> str:
    """Who is acting here, for a log line: the agent (SWARM_AGENT), else the person git
    names, else the bare CLI."""
    from swarm.queue.auth import git_identity

    return os.environ.get("SWARM_AGENT") or git_identity() or "swarm cli"


def facts_cache(ctx: Context) -> Path:
    return Path(ctx.settings.lab_dir) / "facts-cache"


def repo() -> Path:
    from swarm.core.errors import InvalidInput
    from swarm.core.settings import repo_root

    root = repo_root(Path.cwd())
    if root is None:
        raise InvalidInput(f"{Path.cwd()} is not inside a git repository")
    return root


def common_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output (errors too)")
    common.add_argument(
        "--server",
        metavar="URL",
        help="work through a remote `swarm serve --http` (e.g. http://lab:8765/mcp; default: "
        f"SWARM_SERVER) instead of the database: {', '.join(REMOTE_COMMANDS)}",
    )
    common.add_argument("--token", help="the server's bearer token (default: SWARM_TOKEN)")
    common.add_argument(
        "--db",
        help="lab database: a SQLite path or a postgresql:// URL "
        "(default: SWARM_DB, else swarm/swarm.db in the git common dir)",
    )
    return common
