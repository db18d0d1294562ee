"""Who is calling: principals and their roles, per-agent bearer tokens, the operator's token.

Identity is derived from the connection, never declared by an argument:
- over stdio, the server's one name (SWARM_AGENT, else made once at start: `stdio_name`);
- over HTTP, the bearer token: an agent's own token (`issue_token`), a person's, or the lab's
  operator token (the `http_token` file in the lab directory);
- on the lab host's CLI, a person: the git identity `user.name <user.email>` (`git_identity`).

Roles: an agent claims and reports its own tasks; a person (and the operator) may also record
triage decisions; the operator may act for any agent and force a release.
Tokens are random, shown once, and stored as SHA-256 hashes (they are 256-bit random, so a slow
password hash would add nothing but latency to every request).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import subprocess
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from swarm.core.atomic import atomic_open
from swarm.core.errors import InvalidInput, NotFound
from swarm.core.models import Model, iso
from swarm.db.store import Conn, Store

NAME_RE = re.compile(r"^[A-Za-z0-9._@:-]{1,128}$")
TOKEN_PREFIX = "swarm_"
OPERATOR = "operator"
OPERATOR_TOKEN_FILE = "http_token"


class Role(StrEnum):
    agent = "agent"  # claims, heartbeats and reports its own tasks
    person = "person"  # an agent's rights, plus triage decisions
    operator = "operator"  # a person who may also act for any agent and force a release


class Principal(Model):
    """The caller of one request, as its connection proves it."""

    name: str
    role: Role

    @property
    def is_person(self) -> bool:
        """People (and the operator) decide; agents only report."""
        return self.role in (Role.person, Role.operator)


class TokenInfo(Model):
    name: str
    role: Role
    created_at: str


class IssuedToken(Model):
    """A new token: shown once, then only its hash is kept."""

    name: str
    role: Role
    token: str
    created_at: str


def check_name(name: str, what: str = "agent name") -> str:
    """The name if it is 1-128 characters of [A-Za-z0-9._@:-]; raises InvalidInput."""
    if not NAME_RE.match(name):
        raise InvalidInput(
            f"{what} must be 1-128 characters of A-Z a-z 0-9 . _ @ : - (got {name[:140]!r})"
        )
    return name


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(store: Store, name: str, now: datetime, role: Role = Role.agent) -> IssuedToken:
    """A new bearer token for the name, replacing its previous one (which stops working)."""
    check_name(name)
    if name == OPERATOR:
        raise InvalidInput("'operator' is the lab token's name (the http_token file); pick another")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)

    def put(conn: Conn) -> None:
        conn.execute("DELETE FROM tokens WHERE name = ?", (name,))
        conn.execute(
            "INSERT INTO tokens (hash, name, role, created_at) VALUES (?,?,?,?)",
            (hash_token(token), name, role.value, iso(now)),
        )

    store.write(put)
    return IssuedToken(name=name, role=role, token=token, created_at=iso(now))


def list_tokens(store: Store) -> list[TokenInfo]:
    rows = store.read(
        lambda conn: conn.execute(
            "SELECT name, role, created_at FROM tokens ORDER BY name"
        ).fetchall()
    )
    return [TokenInfo(name=r[0], role=r[1], created_at=r[2]) for r in rows]


def revoke_token(store: Store, name: str) -> TokenInfo:
    """Delete the name's token (its requests get 401 from now on); raises NotFound."""

    def drop(conn: Conn) -> TokenInfo:
        row = conn.execute(
            "SELECT name, role, created_at FROM tokens WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise NotFound(f"{name!r} has no token; `swarm agent token --list` shows who has one")
        conn.execute("DELETE FROM tokens WHERE name = ?", (name,))
        return TokenInfo(name=row[0], role=row[1], created_at=row[2])

    return store.write(drop)


def principal_for(store: Store, token: str, operator_token: str | None) -> Principal | None:
    """The principal a presented bearer token stands for, or None (unknown or revoked)."""
    if operator_token and hmac.compare_digest(token.encode(), operator_token.encode()):
        return Principal(name=OPERATOR, role=Role.operator)
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = store.read(
        lambda conn: conn.execute(
            "SELECT name, role FROM tokens WHERE hash = ?", (hash_token(token),)
        ).fetchone()
    )
    return None if row is None else Principal(name=row[0], role=row[1])


def bearer(header: str | bytes | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
    (RFC 9110 section 11.1)."""
    if not header:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, token = text.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


# ---------------------------------------------------------------- the operator's token file


def operator_token(lab_dir: Path, create: bool = True) -> tuple[str, bool]:
    """The operator's bearer token, kept in `<lab dir>/http_token` (0600), made on first use;
    (token, created). Raises InvalidInput for an empty file or one others can read."""
    path = lab_dir / OPERATOR_TOKEN_FILE
    if not path.exists():
        if not create:
            raise NotFound(f"no operator token at {path}: `swarm serve --http` makes one")
        lab_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        try:  # created whole or not at all: a crash or a full disk never leaves an empty token
            with atomic_open(path, perms=0o600, exclusive=True) as handle:
                handle.write(token + "\n")
        except FileExistsError:  # another server created it meanwhile: use that one
            return operator_token(lab_dir, create=False)
        return token, True
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InvalidInput(
            f"{path} is readable by others (mode {mode:03o}): the token is the lab's key; "
            f"run `chmod 600 {path}` and start again"
        )
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise InvalidInput(
            f"{path} holds no usable token (empty or under 16 characters): delete it to have a "
            f"new one made, or write one (`python -c 'import secrets; print(secrets.token_urlsafe(32))' "
            f"> {path} && chmod 600 {path}`)"
        )
    return token, False


# ---------------------------------------------------------------- names derived from the host


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def stdio_name(client: str, host: str, suffix: str | None = None) -> str:
    """A stdio server's one identity when SWARM_AGENT is unset: `client@host-abc123`."""
    suffix = suffix or secrets.token_hex(3)
    return f"{_clean(client)[:40]}@{_clean(host)[:60]}-{suffix}"


def parent_program(pid: int | None = None) -> str:
    """The name of the program that started this process (the MCP client, for a stdio server)."""
    try:
        return Path(f"/proc/{pid or os.getppid()}/comm").read_text(encoding="utf-8").strip()
    except OSError:
        return "mcp"


def git_identity(cwd: Path | None = None) -> str | None:
    """`user.name <user.email>` from git config, the person at this CLI; None when unset."""

    def get(key: str) -> str:
        try:
            out = subprocess.run(
                ["git", "config", key], capture_output=True, text=True, cwd=cwd, check=False
            )
        except OSError:
            return ""
        return out.stdout.strip()

    name, email = get("user.name"), get("user.email")
    if not name:
        return None
    return f"{name} <{email}>" if email else name
