"""A model server's hold on its GPU, from its deploy's start until its teardown.

A deploy task's claim leases its GPU, whole: the engine sizes its memory by itself, so a second
server started beside it would fight it for the same memory. A deploy that reports done with an
endpoint has left that server running, so its lease row stays when the task is no longer
claimed; the row is then a *hold*, derived from the row and the task's state (no flag to keep in
step). It ends when the server is torn down: when a benchmark that depends on the deploy reports
(the benchmark tears the server down unless the deploy's result says keep), or when a person
stops it (`swarm deploy --task ID --down`). The hold lives in the store, so a restarted worker,
a second worker of `swarm work --agents N` and another host's agent all see it; tasks that need
that GPU wait, naming the server (swarm/queue/routing.py). The benchmark of that very deploy may use
the GPU: it measures that server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from swarm.core.models import Requires
from swarm.db.store import Conn

SERVER_KIND = "deploy"  # the kind whose done result may leave a server running
BENCHMARK_KIND = "benchmark"  # the kind that tears a server down when it reports
EventFn = Callable[[Conn, str, datetime, str, str, int | None, str | None], None]


def requirement(kind: str, requires: Requires) -> Requires:
    """A deploy that needs a GPU leases all of it: its server will own the GPU until teardown."""
    if kind == SERVER_KIND and requires.needs_gpu and not requires.exclusive:
        return requires.model_copy(update={"exclusive": True})
    return requires


def leaves_server(kind: str, status: str, payload: Mapping[str, Any]) -> bool:
    """Whether this report leaves a server running: a deploy done with an endpoint."""
    return kind == SERVER_KIND and status == "done" and bool(payload.get("endpoint"))


def _kept(conn: Conn, deploy_id: str) -> bool:
    """The deploy's latest result says keep (its benchmark leaves the server up)."""
    row = conn.execute(
        "SELECT payload FROM results WHERE task_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
        (deploy_id,),
    ).fetchone()
    return bool(row and json.loads(row[0]).get("keep"))


def held_by(conn: Conn, deploy_id: str) -> bool:
    """Whether this (no longer claimed) task still holds a GPU for its server."""
    row = conn.execute(
        "SELECT 1 FROM gpu_leases l JOIN tasks t ON t.id = l.task_id "
        "WHERE l.task_id = ? AND t.state != 'claimed'",
        (deploy_id,),
    ).fetchone()
    return row is not None


def release(
    conn: Conn, deploy_id: str, now: datetime, actor: str, why: str, event: EventFn
) -> bool:
    """End the hold of this deploy's server (inside the caller's transaction); False if none."""
    if not held_by(conn, deploy_id):
        return False
    conn.execute("DELETE FROM gpu_leases WHERE task_id = ?", (deploy_id,))
    event(conn, deploy_id, now, actor, "gpu released", None, why)
    return True


def after_report(
    conn: Conn, task_id: str, kind: str, now: datetime, actor: str, event: EventFn
) -> list[str]:
    """A benchmark reported: the servers it measured were torn down (unless their deploy said
    keep), so their holds end. Returns the deploys released."""
    if kind != BENCHMARK_KIND:
        return []
    released = []
    for (deploy_id,) in conn.execute(
        "SELECT d.depends_on FROM task_deps d WHERE d.task_id = ?", (task_id,)
    ).fetchall():
        if not _kept(conn, deploy_id) and release(
            conn, deploy_id, now, actor, f"its server was torn down after {task_id}", event
        ):
            released.append(deploy_id)
    return released
