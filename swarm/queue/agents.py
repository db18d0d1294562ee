"""Agents and their capabilities (host, GPUs, tools), as registered in the store."""

from __future__ import annotations

from datetime import datetime, timedelta

from swarm.core import limits
from swarm.core.errors import NotFound, UnknownAgent
from swarm.core.models import Agent, Capabilities, iso
from swarm.db.store import Conn, Store

TOUCH_EVERY = timedelta(seconds=30)


def raw_capabilities_in(conn: Conn, agent_id: str) -> tuple[str, str]:
    """The agent's capabilities as stored (JSON) and when it was last seen; raises UnknownAgent."""
    row = conn.execute(
        "SELECT capabilities, last_seen FROM agents WHERE id = ?", (agent_id,)
    ).fetchone()
    if row is None:
        raise UnknownAgent(
            f"agent {agent_id!r} is not registered: run `swarm agent register --name {agent_id}`"
        )
    return str(row[0]), str(row[1])


def touch(conn: Conn, agent_id: str, now: datetime, last_seen: str) -> None:
    """Record that the agent is alive; writes at most every TOUCH_EVERY (claims are hot)."""
    if last_seen < iso(now - TOUCH_EVERY):
        conn.execute("UPDATE agents SET last_seen = ? WHERE id = ?", (iso(now), agent_id))


def register(store: Store, agent_id: str, caps: Capabilities, now: datetime) -> Agent:
    """Record (or replace) an agent's capabilities; re-registering is harmless.

    Raises InvalidInput for a name outside the limits (swarm/core/limits.py)."""
    limits.check(limits.Name, agent_id, "agent")

    def upsert(conn: Conn) -> Agent:
        conn.execute(
            "INSERT INTO agents (id, capabilities, registered_at, last_seen) VALUES (?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET capabilities = excluded.capabilities, "
            "last_seen = excluded.last_seen",
            (agent_id, caps.model_dump_json(), iso(now), iso(now)),
        )
        return _agent(conn, agent_id)

    return store.write(upsert)


def _agent(conn: Conn, agent_id: str) -> Agent:
    row = conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)).fetchone()
    if row is None:
        raise NotFound(f"agent {agent_id!r} is not registered")
    return Agent(
        id=row["id"],
        capabilities=Capabilities.model_validate_json(row["capabilities"]),
        registered_at=row["registered_at"],
        last_seen=row["last_seen"],
    )


def get_agent(store: Store, agent_id: str) -> Agent:
    return store.read(lambda conn: _agent(conn, agent_id))


def list_agents(store: Store) -> list[Agent]:
    def read(conn: Conn) -> list[Agent]:
        ids = [r["id"] for r in conn.execute("SELECT id FROM agents ORDER BY id")]
        return [_agent(conn, agent_id) for agent_id in ids]

    return store.read(read)
