"""Configuration resolved once at the edge (flags, then SWARM_* environment, then defaults)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from swarm.core.errors import InvalidInput, StoreUnavailable

DEFAULT_LEASE_SECONDS = 600.0
DB_FILENAME = "swarm.db"


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(db: str | Path) -> bool:
    return str(db).startswith(POSTGRES_SCHEMES)


@dataclass(frozen=True)
class Settings:
    db: str  # a SQLite file (absolute path) or a postgresql:// URL
    lab_dir: Path  # this host's swarm files: the HTTP token, job logs, the kernel cache
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    busy_timeout_ms: int = 30_000

    @classmethod
    def for_db(
        cls,
        db: str | Path,
        lab_dir: Path | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> Settings:
        """Settings for a database; a SQLite lab keeps its files beside the database file."""
        if lab_dir is None:
            if is_postgres(db):
                raise InvalidInput("a PostgreSQL lab needs a lab_dir for this host's files")
            lab_dir = Path(db).parent
        return cls(db=str(db), lab_dir=lab_dir, lease_seconds=lease_seconds)


def git_common_dir(start: Path) -> Path | None:
    """The git common dir shared by every worktree of the repo containing start, or None.

    Read from the files git writes (`.git` dir, or a `.git` file pointing at a worktree gitdir
    with a `commondir` file), so resolving it costs no subprocess on every CLI call.
    """
    for folder in (start, *start.parents):
        dotgit = folder / ".git"
        if dotgit.is_dir():
            return dotgit.resolve()
        if dotgit.is_file():
            text = dotgit.read_text(encoding="utf-8").strip()
            if not text.startswith("gitdir:"):
                return None
            gitdir = (folder / text.removeprefix("gitdir:").strip()).resolve()
            common = gitdir / "commondir"
            if common.is_file():
                return (gitdir / common.read_text(encoding="utf-8").strip()).resolve()
            return gitdir
    return None


def repo_root(start: Path) -> Path | None:
    """The work tree root (the folder holding `.git`) containing start, or None."""
    return next((f for f in (start, *start.parents) if (f / ".git").exists()), None)


def resolve_db(flag: str | None, env: Mapping[str, str], cwd: Path) -> str:
    """--db, then SWARM_DB, then <git common dir>/swarm/swarm.db; a postgresql:// URL as given."""
    chosen = flag or env.get("SWARM_DB")
    if chosen and is_postgres(chosen):
        return chosen
    if chosen:
        return str(Path(chosen).expanduser().resolve())
    common = git_common_dir(cwd)
    if common is None:
        raise StoreUnavailable(
            f"{cwd} is not inside a git repository, so there is no default lab database: "
            "run swarm inside the lab repo, pass --db PATH or set SWARM_DB"
        )
    return str(common / "swarm" / DB_FILENAME)


def resolve_lab_dir(db: str, env: Mapping[str, str], cwd: Path) -> Path:
    """SWARM_LAB_DIR, else beside a SQLite file; for PostgreSQL, <git common dir>/swarm or
    ~/.swarm (the database is shared, these files are this host's)."""
    if env.get("SWARM_LAB_DIR"):
        return Path(env["SWARM_LAB_DIR"]).expanduser().resolve()
    if not is_postgres(db):
        return Path(db).parent
    common = git_common_dir(cwd)
    return common / "swarm" if common else Path.home() / ".swarm"


def load_settings(
    db_flag: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    env = os.environ if env is None else env
    from swarm.core.limits import LeaseSeconds, check

    lease = env.get("SWARM_LEASE_SECONDS")
    lease_seconds = (
        check(LeaseSeconds, lease, "SWARM_LEASE_SECONDS") if lease else DEFAULT_LEASE_SECONDS
    )
    cwd = cwd or Path.cwd()
    db = resolve_db(db_flag, env, cwd)
    return Settings(db=db, lab_dir=resolve_lab_dir(db, env, cwd), lease_seconds=lease_seconds)
