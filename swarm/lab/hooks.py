"""Git hooks that keep the lab's public attribution: one identity, no AI co-author tags.

Run by the one-line wrappers in .githooks/ (`python3 -m swarm.lab.hooks HOOK ARGS…`) and by CI
(`swarm hooks check RANGE`). Stdlib only, so a hook costs little more than Python's start-up;
the store is opened only for a commit that names a `Task:` and `Claim-Epoch:`.

Identity is what git will write (`git var GIT_AUTHOR_IDENT` / `GIT_COMMITTER_IDENT`), so
`--author`, `--amend`, `GIT_AUTHOR_EMAIL` and `-c user.email=` are all seen. AI attribution is
matched over the whole message (comment lines dropped, NFKC-normalised, zero-width characters
removed), not only what `git interpret-trailers` would parse.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

AI_NAMES = (
    r"claude|anthropic|copilot|cursor\s*agent|cursoragent|codex|openai|chatgpt|gpt-?\d|gemini|"
    r"aider|devin[- ]?ai|devin\[bot\]|windsurf|codeium|tabnine|amazon\s*q\b|codewhisperer|jules"
)
DEFAULT_BLOCK = (
    # AI co-author (and kin) trailers, wherever they stand in the message
    rf"^\s*(co-authored|assisted|generated|helped)-by:.*({AI_NAMES})",
    r"^\s*co-authored-by:\s*cursor\b",
    r"@(anthropic\.com|cursor\.(com|sh)|aider\.chat|openai\.com)\b",
    # "Generated with …" footers
    rf"^\W*generated\s+(with|by)\b.*({AI_NAMES})",
    # robot-emoji attribution lines and agent session links
    r"^\s*\U0001f916",
    r"^\s*claude-session:",
    r"claude\.ai/code/session_",
)
ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
IDENT_RE = re.compile(r"^(?P<name>.*?)\s*<(?P<email>[^>]*)>")
HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg", "pre-push")
AGENT_DOCS = ("CLAUDE.md", "AGENTS.md", "AGENT.md")


class PolicyError(Exception):
    """The attribution policy in pyproject.toml is missing or malformed."""


@dataclass(frozen=True)
class Identity:
    email: str
    name: str | None = None

    def allows(self, name: str, email: str) -> bool:
        return email.lower() == self.email.lower() and (self.name is None or name == self.name)

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else f"<{self.email}>"


@dataclass(frozen=True)
class Policy:
    """`[tool.swarm.attribution]` of pyproject.toml (a dataclass: the hook must not pay for
    importing pydantic on every commit)."""

    identities: tuple[Identity, ...]
    block: tuple[re.Pattern[str], ...] = field(default_factory=tuple)

    @classmethod
    def load(cls, repo: Path) -> Policy:
        path = repo / "pyproject.toml"
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))["tool"]["swarm"]["attribution"]
            identities = tuple(Identity(**entry) for entry in table["identities"])
            patterns = table.get("block", list(DEFAULT_BLOCK))
            block = tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in patterns)
        except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError, re.error) as exc:
            raise PolicyError(
                f"{path}: [tool.swarm.attribution] needs identities = [{{email = …}}] ({exc!r})"
            ) from exc
        if not identities:
            raise PolicyError(f"{path}: [tool.swarm.attribution] lists no identities")
        return cls(identities, block)

    @property
    def primary(self) -> Identity:
        return self.identities[0]


# ---------------------------------------------------------------- pure checks


def parse_ident(ident: str) -> tuple[str, str]:
    match = IDENT_RE.match(ident.strip())
    return (match["name"], match["email"]) if match else (ident.strip(), "")


def identity_problems(policy: Policy, author: str, committer: str) -> list[str]:
    problems = []
    for role, ident in (("author", author), ("committer", committer)):
        name, email = parse_ident(ident)
        if not any(allowed.allows(name, email) for allowed in policy.identities):
            allowed = ", ".join(str(i) for i in policy.identities)
            problems.append(f"{role} is {name} <{email}>; this repo publishes only as {allowed}")
    return problems


def normalise(message: str, comment_char: str = "#") -> str:
    kept = [line for line in message.splitlines() if not line.startswith(comment_char)]
    return unicodedata.normalize("NFKC", "\n".join(kept)).translate(ZERO_WIDTH)


def message_problems(policy: Policy, message: str, comment_char: str = "#") -> list[str]:
    return [
        f"AI attribution is not allowed: {line.strip()!r}"
        for line in normalise(message, comment_char).splitlines()
        if any(pattern.search(line) for pattern in policy.block)
    ]


# ---------------------------------------------------------------- git


def git(*args: str, cwd: Path | None = None, stdin: str | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(
            proc.returncode, ["git", *args], proc.stdout, proc.stderr
        )
    return proc.stdout


def _comment_char() -> str:
    char = git("config", "--default", "#", "core.commentChar").strip()
    return "#" if char in ("", "auto") else char


def _in_replay() -> bool:
    git_dir = Path(git("rev-parse", "--git-dir").strip())
    return any((git_dir / p).exists() for p in ("rebase-merge", "rebase-apply", "CHERRY_PICK_HEAD"))


def _fixes(policy: Policy) -> str:
    who = policy.primary
    name = f'git config user.name "{who.name}"; ' if who.name else ""
    return (
        f"fix: {name}git config user.email {who.email}; unset GIT_AUTHOR_EMAIL GIT_COMMITTER_EMAIL; "
        "remove the AI trailer/footer lines from the message; then commit again, or for an existing "
        "commit: git commit --amend --reset-author (older commits: git rebase -i <base> with "
        "`exec git commit --amend --no-edit --reset-author`)"
    )


# ---------------------------------------------------------------- hooks


def _lease_problems(message: str) -> list[str]:
    """A commit naming `Task:` and `Claim-Epoch:` must come from the task's current lease."""
    task = re.search(r"^Task:\s*(\S+)\s*$", message, re.MULTILINE)
    epoch = re.search(r"^Claim-Epoch:\s*(\d+)\s*$", message, re.MULTILINE)
    if not (task and epoch):
        return []
    from swarm.core.errors import SwarmError
    from swarm.core.settings import load_settings
    from swarm.db.store import open_store
    from swarm.queue import queue  # the store only when the trailers ask for it

    try:
        current = queue.get_task(open_store(load_settings().db), task[1])
    except SwarmError as exc:
        return [f"Task: {task[1]}: {exc}"]
    lease = current.lease
    if lease is None or lease.epoch != int(epoch[1]):
        held = f"epoch {lease.epoch} held by {lease.holder}" if lease else current.state
        return [f"Task: {task[1]} Claim-Epoch: {epoch[1]} is not a live lease (the task is {held})"]
    agent = os.environ.get("SWARM_AGENT")
    if agent and agent != lease.holder:
        return [f"Task: {task[1]} is leased to {lease.holder}, not to {agent}"]
    return []


def check_message_file(policy: Policy, path: str) -> list[str]:
    message = Path(path).read_text(encoding="utf-8", errors="replace")
    problems = identity_problems(
        policy, git("var", "GIT_AUTHOR_IDENT"), git("var", "GIT_COMMITTER_IDENT")
    )
    return problems + message_problems(policy, message, _comment_char()) + _lease_problems(message)


def check_staged(policy: Policy) -> list[str]:
    tracked = git("ls-files", "--", *AGENT_DOCS).split()
    problems = [
        f"{doc} is a local mirror of README.md and must not be committed: git rm --cached {doc}"
        for doc in tracked
    ]
    return problems + identity_problems(
        policy, git("var", "GIT_AUTHOR_IDENT"), git("var", "GIT_COMMITTER_IDENT")
    )


def check_range(
    policy: Policy, revs: Sequence[str], cwd: Path | None = None
) -> dict[str, list[str]]:
    """Problems per commit (sha -> messages) for `git log REVS` (merges included)."""
    fmt = "%H%x1f%an <%ae>%x1f%cn <%ce>%x1f%B%x1e"
    out = git("log", f"--format={fmt}", *revs, "--", cwd=cwd)
    report: dict[str, list[str]] = {}
    for record in filter(str.strip, out.split("\x1e")):
        sha, author, committer, body = record.lstrip("\n").split("\x1f", 3)
        problems = identity_problems(policy, author, committer) + message_problems(policy, body)
        if problems:
            report[sha] = problems
    return report


def _push_ranges(lines: Sequence[str]) -> list[list[str]]:
    ranges = []
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or set(parts[1]) == {"0"}:
            continue  # malformed, or a branch deletion: nothing is published
        local, remote = parts[1], parts[3]
        ranges.append(
            [local, "--not", "--remotes"] if set(remote) == {"0"} else [f"{remote}..{local}"]
        )
    return ranges


def install(repo: Path) -> list[str]:
    """Point git at .githooks/ and stop it guessing identities; idempotent. Returns the changes."""
    wanted = {"core.hooksPath": ".githooks", "user.useConfigOnly": "true"}
    changed = []
    for key, value in wanted.items():
        current = subprocess.run(
            ["git", "config", "--get", key], cwd=repo, capture_output=True, text=True
        )
        if current.stdout.strip() != value:
            git("config", key, value, cwd=repo)
            changed.append(f"{key} = {value}")
    for hook in HOOKS:
        path = repo / ".githooks" / hook
        if path.exists() and not os.access(path, os.X_OK):
            path.chmod(0o755)
            changed.append(f"made .githooks/{hook} executable")
    return changed


def installation_problems(repo: Path) -> list[str]:
    """Why this clone would commit unchecked (empty when the hooks are installed)."""
    proc = subprocess.run(
        ["git", "config", "--get", "core.hooksPath"], cwd=repo, capture_output=True, text=True
    )
    if proc.returncode not in (0, 1):
        return []  # not a git repository: nothing to warn about
    if proc.stdout.strip() != ".githooks":
        return ["attribution hooks are not installed in this clone: run `swarm hooks install`"]
    return []


def run_hook(hook: str, args: Sequence[str], stdin: str = "") -> list[str]:
    policy = Policy.load(Path.cwd())
    if hook == "pre-commit":
        return check_staged(policy)
    if hook == "prepare-commit-msg":
        # Runs even under --no-verify; replays (rebase, cherry-pick) are left to pre-push and CI.
        return [] if _in_replay() else check_message_file(policy, args[0])
    if hook == "commit-msg":
        return check_message_file(policy, args[0])
    if hook == "pre-push":
        problems = []
        for revs in _push_ranges(stdin.splitlines()):
            for sha, found in check_range(policy, revs).items():
                problems += [f"{sha[:12]}: {p}" for p in found]
        return problems
    raise PolicyError(f"unknown hook {hook!r}; known: {', '.join(HOOKS)}")


def main(argv: Sequence[str]) -> int:
    hook, args = argv[0], argv[1:]
    try:
        problems = run_hook(hook, args, sys.stdin.read() if hook == "pre-push" else "")
        fix = _fixes(Policy.load(Path.cwd())) if problems else ""
    except (PolicyError, subprocess.CalledProcessError) as exc:
        print(f"swarm {hook}: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"swarm {hook}: {problem}", file=sys.stderr)
    if problems:
        print(f"swarm {hook}: {fix}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
