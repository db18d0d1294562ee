"""The one error hierarchy. The library raises these; the CLI and MCP adapters translate them.

Each class carries the CLI exit code it maps to and a short label, so the mapping lives in one
place: `exit_codes()` is the table `swarm --help` and the README render.
"""

from __future__ import annotations

from dataclasses import dataclass

OK = 0
USAGE = 2
INTERRUPTED = 130
# Exits the CLI reports under an error type of its own, with no class here: (type, when).
CLI_ONLY = {
    1: (("InternalError", "a bug: still one line (JSON with --json); SWARM_DEBUG=1 shows where"),),
    USAGE: (
        (
            "UsageError",
            "the command line is wrong: an unknown flag, a missing argument, "
            "flags that contradict each other",
        ),
    ),
    INTERRUPTED: (
        ("Interrupted", "stopped by a signal (Ctrl-C, SIGTERM); what it started was removed"),
    ),
}


class SwarmError(Exception):
    """Something swarm refuses or cannot do; the message says what to do next."""

    exit_code = 1
    label = "error"

    @classmethod
    def code(cls) -> str:
        """LeaseLost -> LEASE_LOST: how the MCP server names the error before its message."""
        name = cls.__name__
        return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()


class InvalidInput(SwarmError):
    """A spec, flag or file does not validate; nothing was changed."""

    exit_code = 7
    label = "invalid input"


class NotFound(SwarmError):
    """The named task, agent or result does not exist."""

    exit_code = 5
    label = "not found"


class UnknownAgent(NotFound):
    """The agent has not registered its capabilities yet."""


class Duplicate(SwarmError):
    """The same thing (by its dedupe key) is already queued."""

    exit_code = 6
    label = "duplicate"


class Conflict(SwarmError):
    """The request contradicts the current state (e.g. a second, different report)."""

    exit_code = 6
    label = "conflict"


class NothingClaimable(SwarmError):
    """No ready task matches this agent now; the message says what the others wait for."""

    exit_code = 3
    label = "nothing claimable"


class LeaseLost(SwarmError):
    """The caller's lease (epoch) is no longer the current one; its write was refused."""

    exit_code = 4
    label = "lease lost"


class Forbidden(SwarmError):
    """The caller may not do this (not the lease holder, not a person, another agent's name)."""

    exit_code = 9
    label = "forbidden"


class ToolMissing(SwarmError):
    """An executable the action needs (nvcc, docker) is not on this host; nothing was queued."""

    exit_code = 10
    label = "tool missing"


class DeployFailed(SwarmError):
    """The server did not become ready; the message carries its last log lines."""


class StoreUnavailable(SwarmError):
    """The database cannot be opened or used safely (location, filesystem, lock timeout)."""

    exit_code = 8
    label = "store unavailable"


@dataclass(frozen=True)
class ExitCode:
    """One documented exit status of `swarm`, and the errors that end with it."""

    code: int
    label: str
    errors: tuple[type[SwarmError], ...] = ()
    cli_only: tuple[tuple[str, str], ...] = ()  # (error type, when) of CLI_ONLY


def exit_codes() -> tuple[ExitCode, ...]:
    """Every exit status, lowest first: ok, usage and interrupted beside the error classes."""
    by_code: dict[int, list[type[SwarmError]]] = {}
    every: list[type[SwarmError]] = [SwarmError, *_subclasses(SwarmError)]
    for cls in every:
        by_code.setdefault(cls.exit_code, []).append(cls)
    rows = [
        ExitCode(OK, "ok"),
        ExitCode(USAGE, "usage", cli_only=CLI_ONLY[USAGE]),
        ExitCode(INTERRUPTED, "interrupted", cli_only=CLI_ONLY[INTERRUPTED]),
    ]
    for code, classes in by_code.items():
        own = [c.label for c in classes if "label" in vars(c)]  # a subclass shares its parent's
        label = " or ".join(dict.fromkeys(own))
        rows.append(ExitCode(code, label, tuple(classes), CLI_ONLY.get(code, ())))
    return tuple(sorted(rows, key=lambda row: row.code))


def from_code(code: str, message: str) -> SwarmError:
    """The error a `CODE: message` from the MCP server stands for (remote CLI calls)."""
    classes: list[type[SwarmError]] = [SwarmError, *_subclasses(SwarmError)]
    for cls in classes:
        if cls.code() == code:
            return cls(message)
    return SwarmError(f"{code}: {message}")


def _subclasses(cls: type[SwarmError]) -> list[type[SwarmError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]
