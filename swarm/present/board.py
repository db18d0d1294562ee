"""The board: what `swarm status` shows, computed from the store in one read."""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import Field

from swarm import SCHEMA_VERSION
from swarm.core.models import Model, parse_iso
from swarm.db.store import Conn, Store


class DeploymentCounts(Model):
    """The lab's deployment view: the seed README's status line."""

    benchmarked: int = 0
    working: int = 0
    pending: int = 0
    failed: int = 0
    architectures: int = 0

    @property
    def headline(self) -> str:
        return (
            f"{self.benchmarked} benchmarked | {self.working} working | {self.pending} pending | "
            f"{self.failed} failed — across {self.architectures} GPU architectures"
        )


class GpuCount(Model):
    gpu: str
    arch: str | None
    deployments: int


class ClaimedTask(Model):
    id: str
    kind: str
    title: str
    holder: str
    epoch: int
    lease_age_s: float
    expires_in_s: float


class Resolution(Model):
    """A conflict's replication or research task (or a stale fact's re-measurement) not yet
    finished: the board shows the lab settling its own disputes (swarm/lab/replication.py)."""

    conflict: str | None
    purpose: str
    task_id: str
    state: str
    holder: str | None = None
    fact_key: str


class GpuHold(Model):
    """A model server a done deploy left running, holding its GPU until teardown
    (swarm/queue/gpu_holds.py): deployments on that GPU wait for it."""

    task_id: str
    host: str
    gpu: str
    title: str
    until: str = Field(description="what ends the hold")


class Board(Model):
    schema_version: int = SCHEMA_VERSION
    headline: str
    deployments: DeploymentCounts
    gpus: tuple[GpuCount, ...]
    by_state: dict[str, int]
    blocked: int
    by_kind: dict[str, dict[str, int]]
    claimed: tuple[ClaimedTask, ...]
    resolution: tuple[Resolution, ...] = ()
    gpu_holds: tuple[GpuHold, ...] = ()
    warnings: tuple[str, ...] = ()


# A conflict's replication or a stale fact's re-measurement (swarm/lab/replication.py) re-runs a
# deployment of the catalog: it is no deployment of its own, on the board or in the README.
NOT_RESOLUTION = "AND NOT EXISTS (SELECT 1 FROM replication_tasks g WHERE g.task_id = tasks.id)"


def _deployments(conn: Conn) -> tuple[DeploymentCounts, tuple[GpuCount, ...]]:
    benchmarked = {
        json.loads(r["spec"]).get("deploy_task")
        for r in conn.execute(
            f"SELECT spec FROM tasks WHERE kind = 'benchmark' AND state = 'done' {NOT_RESOLUTION}"
        )
    }
    counts = {"benchmarked": 0, "working": 0, "pending": 0, "failed": 0}
    per_gpu: dict[str, tuple[str | None, int]] = {}
    archs = set()
    rows = conn.execute(
        "SELECT id, state, spec, requires FROM tasks WHERE kind = 'deploy' "
        f"AND state != 'cancelled' {NOT_RESOLUTION} ORDER BY rowid"
    )
    for row in rows:
        if row["state"] == "done":
            counts["benchmarked" if row["id"] in benchmarked else "working"] += 1
        else:
            counts["failed" if row["state"] == "failed" else "pending"] += 1
        gpu = json.loads(row["spec"])["gpu"]
        arch = json.loads(row["requires"]).get("arch")
        archs.add(arch)
        per_gpu[gpu] = (arch, per_gpu.get(gpu, (arch, 0))[1] + 1)
    gpus = tuple(GpuCount(gpu=g, arch=a, deployments=n) for g, (a, n) in per_gpu.items())
    return DeploymentCounts(**counts, architectures=len(archs - {None})), gpus


def _claimed(conn: Conn, now: datetime) -> tuple[ClaimedTask, ...]:
    rows = conn.execute(
        "SELECT id, kind, title, holder, epoch, claimed_at, expires_at FROM tasks "
        "WHERE state = 'claimed' ORDER BY claimed_at"
    )
    return tuple(
        ClaimedTask(
            id=r["id"],
            kind=r["kind"],
            title=r["title"],
            holder=r["holder"],
            epoch=r["epoch"],
            lease_age_s=round((now - parse_iso(r["claimed_at"])).total_seconds(), 1),
            expires_in_s=round((parse_iso(r["expires_at"]) - now).total_seconds(), 1),
        )
        for r in rows
    )


def _resolution(conn: Conn) -> tuple[Resolution, ...]:
    rows = conn.execute(
        "SELECT r.conflict, r.purpose, r.task_id, t.state, t.holder, r.fact_key "
        "FROM replications r JOIN tasks t ON t.id = r.task_id "
        "WHERE t.state IN ('pending', 'claimed') ORDER BY r.created_at, r.key"
    )
    return tuple(
        Resolution(conflict=r[0], purpose=r[1], task_id=r[2], state=r[3], holder=r[4],
                   fact_key=r[5])
        for r in rows
    )  # fmt: skip


def _gpu_holds(conn: Conn) -> tuple[GpuHold, ...]:
    rows = conn.execute(
        "SELECT l.task_id, l.host, l.gpu_name, t.title FROM gpu_leases l "
        "JOIN tasks t ON t.id = l.task_id WHERE t.state != 'claimed' ORDER BY l.host, l.task_id"
    )
    return tuple(
        GpuHold(task_id=r[0], host=r[1], gpu=r[2], title=r[3],
                until=f"its benchmark tears it down, or `swarm deploy --task {r[0]} --down`")
        for r in rows
    )  # fmt: skip


def board(store: Store, now: datetime) -> Board:
    def read(conn: Conn) -> Board:
        by_state = {
            r[0]: r[1]
            for r in conn.execute("SELECT state, count(*) FROM tasks GROUP BY state ORDER BY state")
        }
        by_kind: dict[str, dict[str, int]] = {}
        for r in conn.execute("SELECT kind, state, count(*) FROM tasks GROUP BY kind, state"):
            by_kind.setdefault(r[0], {})[r[1]] = r[2]
        blocked = conn.execute(
            "SELECT count(DISTINCT d.task_id) FROM task_deps d JOIN tasks t ON t.id = d.task_id "
            "JOIN tasks p ON p.id = d.depends_on WHERE t.state = 'pending' AND p.state != 'done'"
        ).fetchone()[0]
        deployments, gpus = _deployments(conn)
        return Board(
            headline=deployments.headline,
            deployments=deployments,
            gpus=gpus,
            by_state=by_state,
            blocked=blocked,
            by_kind=by_kind,
            claimed=_claimed(conn, now),
            resolution=_resolution(conn),
            gpu_holds=_gpu_holds(conn),
        )

    return store.read(read)


class Tenant(Model):
    task_id: str
    holder: str | None
    gb: float
    exclusive: bool


class GpuTenancy(Model):
    """One GPU of a host: what registered agents say it has, and the leases on it now."""

    host: str
    uuid: str
    name: str
    arch: str | None
    memory_gb: float
    leased_gb: float
    tenants: tuple[Tenant, ...]


class AgentSeen(Model):
    id: str
    host: str
    gpus: int
    last_seen: str
    seen_ago_s: float


class Hosts(Model):
    """Who runs where: each host's GPUs with their tenants, and each agent's last sign of life."""

    schema_version: int = SCHEMA_VERSION
    gpus: tuple[GpuTenancy, ...]
    agents: tuple[AgentSeen, ...]


def _tenants(conn: Conn) -> dict[tuple[str, str], list[Tenant]]:
    rows = conn.execute(
        "SELECT l.host, l.gpu_uuid, l.task_id, t.holder, l.gb, l.exclusive FROM gpu_leases l "
        "LEFT JOIN tasks t ON t.id = l.task_id ORDER BY l.task_id"
    )
    out: dict[tuple[str, str], list[Tenant]] = {}
    for r in rows:
        tenant = Tenant(task_id=r[2], holder=r[3], gb=r[4], exclusive=bool(r[5]))
        out.setdefault((r[0], r[1]), []).append(tenant)
    return out


def hosts(store: Store, now: datetime) -> Hosts:
    """GPUs per host (from the agents' registrations) with their leases, and the agents."""
    from swarm.core.models import Capabilities

    def read(conn: Conn) -> Hosts:
        tenants = _tenants(conn)
        gpus: dict[tuple[str, str], GpuTenancy] = {}
        seen = []
        for r in conn.execute("SELECT id, capabilities, last_seen FROM agents ORDER BY id"):
            caps = Capabilities.model_validate_json(r[1])
            ago = round((now - parse_iso(r[2])).total_seconds(), 1)
            seen.append(
                AgentSeen(
                    id=r[0], host=caps.host, gpus=len(caps.gpus), last_seen=r[2], seen_ago_s=ago
                )
            )
            for g in caps.gpus:  # agents on one host see the same GPUs: one row per GPU
                on = tuple(tenants.pop((caps.host, g.uuid), ()))
                gpus.setdefault(
                    (caps.host, g.uuid),
                    GpuTenancy(
                        host=caps.host,
                        uuid=g.uuid,
                        name=g.name,
                        arch=g.arch,
                        memory_gb=g.memory_total_gb,
                        leased_gb=round(sum(t.gb for t in on), 2),
                        tenants=on,
                    ),
                )
        for (host, uuid), left in tenants.items():  # leases on a GPU no agent reports any more
            gpus[(host, uuid)] = GpuTenancy(
                host=host,
                uuid=uuid,
                name="(unregistered)",
                arch=None,
                memory_gb=0.0,
                leased_gb=sum(t.gb for t in left),
                tenants=tuple(left),
            )
        ordered = tuple(gpus[k] for k in sorted(gpus))
        return Hosts(gpus=ordered, agents=tuple(seen))

    return store.read(read)
