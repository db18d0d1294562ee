"""What the benchmark scripts share about the processes they time."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def as_installed(env: Mapping[str, str]) -> dict[str, str]:
    """An environment in which `swarm` starts as an installed copy does: with bytecode.

    pip byte-compiles a package when it installs it; an editable install, or
    PYTHONDONTWRITEBYTECODE (set on some machines), would instead make every timed process
    compile swarm from source (tens of ms), which no installed swarm pays. Compiles once here.
    """
    out = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    folders = [str(REPO / "swarm"), str(REPO / "tools")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], env=out, check=True)
    return out


def seed_tasks(location: str | Path, n: int) -> None:
    """A lab at location (a SQLite path or a postgresql:// URL) with n plain pending tasks."""
    from swarm.core.models import NewTask
    from swarm.db.store import open_store
    from swarm.queue.queue import insert_task

    store = open_store(location)
    now = datetime.now(UTC)
    store.write(
        lambda conn: [
            insert_task(conn, NewTask(kind="other", title=f"t{i}"), now, "bench") for i in range(n)
        ]
    )
    if store.dialect.refresh_stats:  # a live lab's autovacuum has analyzed its tables
        store.write(lambda conn: conn.execute(str(store.dialect.refresh_stats)))
    store.close()
