"""The task queue: add, claim, heartbeat, release, report, reap; reads for ls/show/log.

Every function takes `now` (time is a parameter) and runs each write in one short transaction
of the store (SQLite's BEGIN IMMEDIATE, or PostgreSQL's READ COMMITTED with the row locks
`conn.dialect` adds): no subprocess, network or model call inside.
Fencing: each claim bumps the task's epoch; heartbeat, release and report must present the
current epoch, so a worker that wakes after its lease was reclaimed cannot overwrite anything.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn

from pydantic import ValidationError

from swarm.core import limits
from swarm.core.errors import (
    Conflict,
    Duplicate,
    Forbidden,
    InvalidInput,
    LeaseLost,
    NotFound,
    NothingClaimable,
)
from swarm.core.models import (
    Capabilities,
    Claim,
    Event,
    GpuLease,
    Lease,
    NewTask,
    Reclaimed,
    Requires,
    Result,
    Task,
    TaskState,
    iso,
)
from swarm.db.store import Conn, Row, Store
from swarm.facts.findings import NewFinding, insert_findings, refuse_decisions
from swarm.queue import agents, gpu_holds, guard
from swarm.queue.routing import GpuUsage, pick_gpu, summarize, unmet
from swarm.queue.specs import check_kind, dedupe_key, validate_spec

TASK_COLUMNS = (
    "id, kind, title, spec, state, priority, requires, attempts, max_attempts, dedupe_key, "
    "epoch, holder, claimed_at, expires_at, note, created_at, updated_at"
)
READY_SQL = """
SELECT t.id, t.kind, t.requires, t.priority, t.rowid,
  (SELECT {ids_agg} FROM task_deps WHERE task_id = t.id) AS deps,
  EXISTS (SELECT 1 FROM replication_tasks g WHERE g.task_id = t.id) AS guarded
FROM tasks t
WHERE t.state = 'pending' {kind_filter} {after}
  AND NOT EXISTS (
    SELECT 1 FROM task_deps d JOIN tasks p ON p.id = d.depends_on
    WHERE d.task_id = t.id AND p.state != 'done')
ORDER BY t.priority DESC, t.rowid
LIMIT ?
"""
READY_PAGE = 256  # pages after the first, which is one claim batch: most claims take from it
AFTER_SQL = "AND (t.priority < ? OR (t.priority = ? AND t.rowid > ?))"  # keyset: the next page
NO_REQUIREMENTS = "{}"


# ---------------------------------------------------------------- rows -> models


def _event(
    conn: Conn,
    task_id: str,
    now: datetime,
    actor: str,
    action: str,
    epoch: int | None = None,
    detail: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO events (task_id, at, actor, action, epoch, detail) VALUES (?,?,?,?,?,?)",
        (task_id, iso(now), actor, action, epoch, detail),
    )


def _gpu_lease(conn: Conn, task_id: str) -> GpuLease | None:
    row = conn.execute(
        "SELECT host, gpu_uuid, gpu_name, gb, exclusive FROM gpu_leases WHERE task_id = ?",
        (task_id,),
    ).fetchone()
    return None if row is None else GpuLease(**dict(row))


def _task_model(row: Row, deps: Sequence[tuple[str, str]], gpu: GpuLease | None = None) -> Task:
    """A Task from its row, its (dependency, state) pairs and its GPU lease; no I/O."""
    lease = None
    if row["state"] == TaskState.claimed:
        lease = Lease(
            holder=row["holder"],
            epoch=row["epoch"],
            expires_at=row["expires_at"],
            claimed_at=row["claimed_at"],
            gpu=gpu,
        )
    try:
        return _build_task(row, deps, lease)
    except ValidationError as exc:
        raise InvalidInput(
            f"task {row['id']} as stored breaks the input limits ({limits.describe(exc)}): it was "
            "written before them, and cannot be shown or delivered"
        ) from exc


def _build_task(row: Row, deps: Sequence[tuple[str, str]], lease: Lease | None) -> Task:
    return Task(
        id=row["id"],
        kind=row["kind"],
        title=row["title"],
        spec=json.loads(row["spec"]),
        state=row["state"],
        blocked_by=tuple(dep for dep, state in deps if state != TaskState.done),
        priority=row["priority"],
        requires=Requires.model_validate_json(row["requires"]),
        depends_on=tuple(dep for dep, _ in deps),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        dedupe_key=row["dedupe_key"],
        epoch=row["epoch"],
        lease=lease,
        note=row["note"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _deps(conn: Conn, task_id: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT d.depends_on, p.state FROM task_deps d JOIN tasks p ON p.id = d.depends_on "
            "WHERE d.task_id = ? ORDER BY d.depends_on",
            (task_id,),
        )
    ]


def _to_task(conn: Conn, row: Row) -> Task:
    gpu = _gpu_lease(conn, row["id"]) if row["state"] == TaskState.claimed else None
    return _task_model(row, _deps(conn, row["id"]), gpu)


def _row(conn: Conn, task_id: str) -> Row:
    limits.check(limits.Name, task_id, "task")
    row: Row | None = conn.execute(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no task {task_id!r}; `swarm ls` lists the tasks")
    return row


def _to_result(row: Row) -> Result:
    data = dict(row)
    data["payload"] = json.loads(data["payload"])
    return Result(**data)


# ---------------------------------------------------------------- add


ID_PREFIXES = {"benchmark": "bench", "research": "rsrch"}


def new_task_id(kind: str, key: str | None) -> str:
    prefix = ID_PREFIXES.get(kind, kind)
    if key:  # deterministic: a deploy and its benchmark share the suffix of their deployment
        return f"{prefix}-{hashlib.sha256(key.split(':', 1)[1].encode()).hexdigest()[:6]}"
    return f"{prefix}-{secrets.token_hex(3)}"


def insert_task(
    conn: Conn,
    new: NewTask,
    now: datetime,
    actor: str,
    state: TaskState = TaskState.pending,
    note: str | None = None,
) -> str:
    """Insert one validated task inside the caller's transaction; returns its id."""
    check_kind(new.kind)
    spec = validate_spec(new.kind, new.spec)
    key = dedupe_key(new.kind, spec, new.dedupe_key)
    if key is not None:
        existing = conn.execute(
            "SELECT id, state FROM tasks WHERE dedupe_key = ?", (key,)
        ).fetchone()
        if existing is not None:
            raise Duplicate(
                f"task {existing['id']} ({existing['state']}) already queues this {new.kind} "
                f"(dedupe key {key!r}); use it, or give a distinct --dedupe-key"
            )
    task_id = new.id or new_task_id(new.kind, key)
    if conn.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone():
        if new.id:
            raise Duplicate(f"a task with id {task_id!r} already exists")
        task_id = f"{ID_PREFIXES.get(new.kind, new.kind)}-{secrets.token_hex(4)}"
    missing = [
        d
        for d in new.depends_on
        if not conn.execute("SELECT 1 FROM tasks WHERE id = ?", (d,)).fetchone()
    ]
    if missing or task_id in new.depends_on:
        raise NotFound(f"depends_on names unknown tasks: {', '.join(missing or [task_id])}")
    stamp = iso(now)
    conn.execute(
        f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES (?,?,?,?,?,?,?,0,?,?,0,NULL,NULL,NULL,?,?,?)",
        (
            task_id,
            new.kind,
            new.title,
            json.dumps(spec, sort_keys=True),
            state,
            new.priority,
            new.requires.model_dump_json(exclude_defaults=True),
            new.max_attempts,
            key,
            note,
            stamp,
            stamp,
        ),
    )
    conn.executemany(
        "INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)",
        [(task_id, dep) for dep in dict.fromkeys(new.depends_on)],
    )
    _event(conn, task_id, now, actor, "added" if state == TaskState.pending else f"added {state}")
    return task_id


def add_task(store: Store, new: NewTask, now: datetime, actor: str = "cli") -> Task:
    """Queue a task; raises InvalidInput, Duplicate (naming the existing task) or NotFound."""
    return store.write(lambda conn: _to_task(conn, _row(conn, insert_task(conn, new, now, actor))))


# ---------------------------------------------------------------- claim


def _reap(conn: Conn, now: datetime) -> list[Reclaimed]:
    expired = conn.execute(
        "SELECT id, holder, epoch, attempts, max_attempts FROM tasks "
        f"WHERE state = 'claimed' AND expires_at < ?{conn.dialect.skip_locked}",
        (iso(now),),
    ).fetchall()
    reclaimed = []
    for row in expired:
        final = row["attempts"] >= row["max_attempts"]
        state = TaskState.failed if final else TaskState.pending
        note = f"lease of {row['holder']} (epoch {row['epoch']}) expired" + (
            f"; gave up after {row['attempts']} attempts" if final else ""
        )
        conn.execute(
            "UPDATE tasks SET state = ?, holder = NULL, claimed_at = NULL, expires_at = NULL, "
            "note = ?, updated_at = ? WHERE id = ?",
            (state, note, iso(now), row["id"]),
        )
        conn.execute("DELETE FROM gpu_leases WHERE task_id = ?", (row["id"],))
        _event(conn, row["id"], now, "reaper", f"expired -> {state}", row["epoch"], note)
        reclaimed.append(
            Reclaimed(task_id=row["id"], holder=row["holder"], epoch=row["epoch"], new_state=state)
        )
    return reclaimed


def reap(store: Store, now: datetime) -> list[Reclaimed]:
    """Return expired leases to pending (or failed after max_attempts); claims also do this."""
    return store.write(lambda conn: _reap(conn, now))


def _gpu_usage(conn: Conn, host: str) -> GpuUsage:
    """This host's leases; a lease whose task is no longer claimed is a server's hold
    (swarm/queue/gpu_holds.py), and a claimed deploy's is the server it is starting."""
    usage = GpuUsage()
    for row in conn.execute(
        "SELECT l.task_id, l.gpu_uuid, l.gb, l.exclusive, t.state, t.kind FROM gpu_leases l "
        "JOIN tasks t ON t.id = l.task_id WHERE l.host = ?",
        (host,),
    ):
        # a hold, or a deploy starting the server that will hold the GPU
        server = row["state"] != TaskState.claimed.value or row["kind"] == gpu_holds.SERVER_KIND
        usage.add(row["gpu_uuid"], row["gb"], bool(row["exclusive"]), row["task_id"], server)
    return usage


def _kind_filter(kinds: Sequence[str] | None, task_id: str | None = None) -> tuple[str, list[str]]:
    sql, params = "", []
    if kinds:
        for kind in kinds:
            check_kind(kind)
        sql, params = f"AND t.kind IN ({','.join('?' * len(kinds))})", list(kinds)
    if task_id is not None:
        sql, params = sql + " AND t.id = ?", [*params, task_id]
    return sql, params


Verdict = tuple[Row, Requires, str | None]


class _Scan:
    """One pass over the ready tasks for one agent: its capabilities and the GPU leases of its
    host, each read only when a task has requirements (most claims need neither)."""

    def __init__(self, conn: Conn, agent_id: str) -> None:
        self.conn = conn
        self.agent_id = agent_id
        self.raw_caps, self.last_seen = agents.raw_capabilities_in(conn, agent_id)
        self._caps: Capabilities | None = None
        self._usage: GpuUsage | None = None

    @property
    def caps(self) -> Capabilities:
        if self._caps is None:
            self._caps = Capabilities.model_validate_json(self.raw_caps)
        return self._caps

    @property
    def usage(self) -> GpuUsage:
        if self._usage is None:
            if self.conn.dialect.host_lock:  # writers overlap: lease this host's GPUs one at a time
                self.conn.execute(self.conn.dialect.host_lock, (f"swarm-gpu:{self.caps.host}",))
            self._usage = _gpu_usage(self.conn, self.caps.host)
        return self._usage

    def walk(self, kinds: Sequence[str] | None, task_id: str | None = None) -> Iterator[Verdict]:
        """Ready tasks in claim order, each with why this agent cannot run it now (None: it can).

        GPU reservations accumulate in self.usage, so a later task sees what earlier ones wait for.
        Read a page at a time: a claim usually takes the first task.
        """
        kind_sql, params = _kind_filter(kinds, task_id)
        ids_agg = self.conn.dialect.ids_agg.format("depends_on")
        after: list[object] = []
        page = self.conn.dialect.claim_batch
        while True:
            sql = READY_SQL.format(
                ids_agg=ids_agg, kind_filter=kind_sql, after=AFTER_SQL if after else ""
            )
            rows = self.conn.execute(sql, [*params, *after, page]).fetchall()
            for row in rows:
                if row["requires"] == NO_REQUIREMENTS and not row["guarded"]:
                    yield row, Requires(), None
                    continue
                requires = gpu_holds.requirement(
                    row["kind"], Requires.model_validate_json(row["requires"])
                )
                why = self._guard(row) or unmet(requires, self.caps, self.usage_for(row))
                yield row, requires, why
            if len(rows) < page:
                return
            last = rows[-1]
            after, page = [last["priority"], last["priority"], last["rowid"]], READY_PAGE

    def _guard(self, row: Row) -> str | None:
        """Who may not run a replication: derived from its conflict (swarm/queue/guard.py)."""
        if not row["guarded"]:
            return None
        return guard.refusal(self.conn, row["id"], self.agent_id, self.caps)

    def usage_for(self, row: Row) -> GpuUsage:
        """The leases as this task sees them: the servers it depends on are its to measure."""
        deps = (row["deps"] or "").split("\x1f")
        return self.usage.without(d for d in deps if d)

    def lease_for(self, requires: Requires, row: Row) -> GpuLease | None:
        """The GPU share a task with these (met) requirements would lease, if it needs one."""
        if not requires.needs_gpu:
            return None
        gpu = pick_gpu(requires, self.caps, self.usage_for(row))
        assert gpu is not None  # unmet() just said one fits
        share = gpu.memory_total_gb if requires.exclusive else (requires.gpu_mem_gb or 0.0)
        return GpuLease(
            host=self.caps.host,
            gpu_uuid=gpu.uuid,
            gpu_name=gpu.name,
            gb=share,
            exclusive=requires.exclusive,
        )

    def choices(
        self, kinds: Sequence[str] | None, task_id: str | None = None
    ) -> Iterator[dict[str, tuple[Row, GpuLease | None]]]:
        """Batches of the ready tasks this agent can run now, in claim order, each task with the
        GPU share it would lease. A claim offers one batch at a time to one UPDATE."""
        batch: dict[str, tuple[Row, GpuLease | None]] = {}
        for row, requires, why in self.walk(kinds, task_id):
            if why is None:
                batch[row["id"]] = (row, self.lease_for(requires, row))
            if len(batch) == self.conn.dialect.claim_batch:
                yield batch
                batch = {}
        if batch:
            yield batch


ClaimRows = tuple[Row, list[tuple[str, str]], GpuLease | None]
CLAIM_SQL = """
UPDATE tasks SET state = 'claimed', epoch = epoch + 1, attempts = attempts + 1,
  holder = ?, claimed_at = ?, expires_at = ?, updated_at = ?
WHERE id = (
  SELECT id FROM tasks WHERE id IN ({ids}) AND state = 'pending'
  ORDER BY priority DESC, rowid LIMIT 1{skip_locked})
RETURNING {columns}
"""


def _claim_in(
    conn: Conn,
    agent_id: str,
    kinds: Sequence[str] | None,
    now: datetime,
    lease_seconds: float,
    task_id: str | None = None,
) -> Task | str | None:
    """The claimed task; or the id of a task found undeliverable and failed (claim again);
    or None when nothing is claimable."""
    scan = _Scan(conn, agent_id)
    _reap(conn, now)
    stamp, expires = iso(now), iso(now + timedelta(seconds=lease_seconds))
    for batch in scan.choices(kinds, task_id):
        # One statement takes the best task of the batch that no concurrent claim holds (on
        # SQLite the batch is the one best task, and no claim runs beside this one).
        sql = CLAIM_SQL.format(
            ids=",".join("?" * len(batch)),
            skip_locked=conn.dialect.skip_locked,
            columns=TASK_COLUMNS,
        )
        row = conn.execute(sql, (agent_id, stamp, expires, stamp, *batch)).fetchone()
        if row is not None:
            ready, gpu = batch[row["id"]]
            taken = _take(conn, row, ready, gpu, (agent_id, scan.last_seen), now)
            # Built before COMMIT: a task whose answer cannot be rendered (a spec stored before
            # the limits, nested too deep) is never handed out and then lost (issue #17).
            try:
                return _task_model(*taken)
            except InvalidInput as exc:
                return _fail_undeliverable(conn, row, agent_id, now, str(exc))
    return None


def _fail_undeliverable(conn: Conn, row: Row, agent_id: str, now: datetime, why: str) -> str:
    """Fail a just-claimed task that cannot be delivered, saying why; returns its id."""
    note = f"cannot be delivered to an agent: {why}"[: limits.MAX_NOTE_BYTES // 4]
    conn.execute(
        "UPDATE tasks SET state = 'failed', holder = NULL, claimed_at = NULL, expires_at = NULL, "
        "note = ?, updated_at = ? WHERE id = ?",
        (note, iso(now), row["id"]),
    )
    conn.execute("DELETE FROM gpu_leases WHERE task_id = ?", (row["id"],))
    _event(conn, row["id"], now, agent_id, "failed undeliverable", row["epoch"], note)
    return str(row["id"])


def _take(
    conn: Conn,
    row: Row,
    ready: Row,
    gpu: GpuLease | None,
    agent: tuple[str, str],
    now: datetime,
) -> ClaimRows:
    """Record what goes with a claimed task: its GPU lease, the event, the agent's last_seen."""
    task_id, (agent_id, last_seen) = row["id"], agent
    if gpu is not None:
        conn.execute(
            "INSERT INTO gpu_leases VALUES (?,?,?,?,?,?,?)",
            (
                task_id,
                row["epoch"],
                gpu.host,
                gpu.gpu_uuid,
                gpu.gpu_name,
                gpu.gb,
                int(gpu.exclusive),
            ),
        )
    detail = f"gpu {gpu.gpu_name} {gpu.gb:g} GB" if gpu else None
    _event(conn, task_id, now, agent_id, "claimed", row["epoch"], detail)
    agents.touch(conn, agent_id, now, last_seen)
    # a ready task's dependencies are all done
    deps = [
        (dep, TaskState.done.value) for dep in sorted((ready["deps"] or "").split("\x1f")) if dep
    ]
    return row, deps, gpu


def claim(
    store: Store,
    agent_id: str,
    now: datetime,
    lease_seconds: float,
    kinds: Sequence[str] | None = None,
    task_id: str | None = None,
) -> Claim:
    """Atomically claim the best ready task this agent can run (or that one task), with its GPU lease.

    Raises NothingClaimable (saying what the ready tasks wait for), UnknownAgent, InvalidInput.
    """
    _check_claim_args(agent_id, lease_seconds, kinds, task_id)
    while True:  # each pass that meets an undeliverable task fails it, so this ends
        claimed = store.write(
            lambda conn: _claim_in(conn, agent_id, kinds, now, lease_seconds, task_id)
        )
        if not isinstance(claimed, str):
            break
        if claimed == task_id:
            raise InvalidInput(
                f"{task_id} cannot be delivered; it was failed: `swarm show {task_id}`"
            )
    if claimed is None:
        if task_id is not None:
            task = get_task(store, task_id)
            why = store.read(lambda conn: _why_not(conn, agent_id, task_id))
            raise NothingClaimable(
                f"{task_id} is not claimable by {agent_id} now (it is {task.state}"
                + (f", waiting for {', '.join(task.blocked_by)}" if task.blocked_by else "")
                + (f"; it waits for {why}" if why else "")
                + ")"
            )
        raise NothingClaimable(explain_unclaimable(store, agent_id, kinds))
    assert claimed.lease is not None
    return Claim(task=claimed, lease=claimed.lease)


def _why_not(conn: Conn, agent_id: str, task_id: str) -> str | None:
    """What this ready task waits for, as this agent sees it (None: not ready, or nothing)."""
    return next((why for _, _, why in _Scan(conn, agent_id).walk(None, task_id)), None)


def _check_claim_args(
    agent_id: str, lease_seconds: float, kinds: Sequence[str] | None, task_id: str | None
) -> None:
    limits.check(limits.Name, agent_id, "agent")
    limits.check(limits.LeaseSeconds, lease_seconds, "lease")
    for kind in kinds or ():
        limits.check(limits.Name, kind, "kind")
    if task_id is not None:
        limits.check(limits.Name, task_id, "task")


def explain_unclaimable(
    store: Store,
    agent_id: str,
    kinds: Sequence[str] | None,
    runs: Sequence[str] | None = None,
) -> str:
    """Why nothing is claimable for this agent, counted by reason. With runs (the kinds a worker
    has executors for), a ready task of another kind waits for an agent that runs that kind."""

    def explain(conn: Conn) -> str:
        scan = _Scan(conn, agent_id)
        kind_sql, params = _kind_filter(kinds)
        pending = conn.execute(
            f"SELECT id, kind FROM tasks t WHERE state = 'pending' {kind_sql}", params
        ).fetchall()
        if not pending:
            claimed = conn.execute("SELECT count(*) FROM tasks WHERE state='claimed'").fetchone()
            scope = f" of kind {', '.join(kinds)}" if kinds else ""
            return f"no pending tasks{scope} ({claimed[0]} claimed by agents now)"
        kind_of = {r["id"]: r["kind"] for r in pending}

        def ready(task_id: str) -> str:
            kind = kind_of.get(task_id)
            if runs is not None and kind not in runs:
                return f"an agent that runs {kind} tasks (no executor for them here)"
            return "a claim (ready now: retry)"

        reasons = [why or ready(row["id"]) for row, _, why in scan.walk(kinds)]
        waiting = _blocked_ids(conn)
        reasons += [waiting[r["id"]] for r in pending if r["id"] in waiting]
        return f"nothing claimable for {agent_id}: " + summarize(reasons)

    return store.read(explain)


def _blocked_ids(conn: Conn) -> dict[str, str]:
    """Pending tasks with an unfinished dependency -> what they wait for."""
    out: dict[str, str] = {}
    for row in conn.execute(
        "SELECT d.task_id, max(CASE WHEN p.state IN ('failed','cancelled') THEN 1 ELSE 0 END) "
        "AS dead FROM task_deps d "
        "JOIN tasks p ON p.id = d.depends_on WHERE p.state != 'done' GROUP BY d.task_id"
    ):
        out[row["task_id"]] = (
            "a dependency that failed or was cancelled" if row["dead"] else "their dependencies"
        )
    return out


def cancel_pending(conn: Conn, task_id: str, now: datetime, actor: str, note: str) -> bool:
    """Cancel a task nobody holds yet, inside the caller's transaction; False when it is not
    pending (claimed work finishes, and its result is kept)."""
    done = conn.execute(
        "UPDATE tasks SET state = 'cancelled', note = ?, updated_at = ? "
        "WHERE id = ? AND state = 'pending'",
        (note, iso(now), task_id),
    ).rowcount
    if done:
        _event(conn, task_id, now, actor, "cancelled", None, note)
    return bool(done)


def revive_cancelled(conn: Conn, task_id: str, now: datetime, actor: str, note: str) -> bool:
    """Put a cancelled task back to pending, inside the caller's transaction; False when it is
    not cancelled."""
    done = conn.execute(
        "UPDATE tasks SET state = 'pending', note = ?, updated_at = ? "
        "WHERE id = ? AND state = 'cancelled'",
        (note, iso(now), task_id),
    ).rowcount
    if done:
        _event(conn, task_id, now, actor, "revived", None, note)
    return bool(done)


# ---------------------------------------------------------------- lease holder calls


def _check_lease(conn: Conn, task_id: str, epoch: int, agent: str | None = None) -> NoReturn:
    """Raise the error that explains why (task_id, epoch) is not the caller's live lease:
    Forbidden when the caller is not the holder of the current epoch, else LeaseLost."""
    row = _row(conn, task_id)  # NotFound
    if row["epoch"] == epoch and row["state"] == "claimed" and agent is not None:
        _check_holder(task_id, row["holder"], epoch, agent)
    if row["epoch"] != epoch:
        now = f"held by {row['holder']}" if row["state"] == "claimed" else f"and {row['state']}"
        raise LeaseLost(
            f"your lease on {task_id} (epoch {epoch}) was lost: it is now at epoch "
            f"{row['epoch']} {now}; drop this work and claim a new task"
        )
    raise LeaseLost(
        f"your lease on {task_id} (epoch {epoch}) has ended: the task is {row['state']}"
    )


def _check_holder(task_id: str, holder: str, epoch: int, agent: str | None) -> None:
    """Raise Forbidden unless the caller is the holder: the epoch fences stale workers, it is no
    authority (anyone can read it with get_task)."""
    if agent is not None and holder != agent:
        raise Forbidden(
            f"{task_id} is held by {holder} (epoch {epoch}); you are {agent}: only the holder "
            "heartbeats, releases or reports it. Claim a task of your own"
        )


def _fenced_update(
    conn: Conn,
    task_id: str,
    epoch: int,
    assignments: str,
    params: Sequence[object],
    agent: str | None = None,
) -> Row | None:
    """UPDATE the task only if (task_id, epoch) is its live lease, held by agent when one is
    named; the row after, or None.

    A lease past its expiry but not yet reaped still counts: the epoch is the truth, and nobody
    else can hold the task without bumping it.
    """
    holder = "" if agent is None else " AND holder = ?"
    row: Row | None = conn.execute(
        f"UPDATE tasks SET {assignments} WHERE id = ? AND state = 'claimed' AND epoch = ?"
        f"{holder} RETURNING {TASK_COLUMNS}",
        (*params, task_id, epoch, *(() if agent is None else (agent,))),
    ).fetchone()
    return row


def _check_lease_args(task_id: str, epoch: int, note: str | None = None) -> None:
    limits.check(limits.Name, task_id, "task")
    limits.check(limits.Epoch, epoch, "epoch")
    if note is not None:
        limits.check(limits.Note, note, "note")


def heartbeat(
    store: Store,
    task_id: str,
    epoch: int,
    now: datetime,
    lease_seconds: float,
    agent: str | None = None,
) -> Lease:
    """Extend the lease; raises LeaseLost when epoch is not current, Forbidden when agent (the
    caller, when known) is not the holder, NotFound for no task."""
    _check_lease_args(task_id, epoch)
    limits.check(limits.LeaseSeconds, lease_seconds, "lease")

    def beat(conn: Conn) -> tuple[Row, GpuLease | None]:
        expires = iso(now + timedelta(seconds=lease_seconds))
        row = _fenced_update(
            conn, task_id, epoch, "expires_at = ?, updated_at = ?", (expires, iso(now)), agent
        )
        if row is None:
            _check_lease(conn, task_id, epoch, agent)
        return row, _gpu_lease(conn, task_id)

    row, gpu = store.write(beat)
    return Lease(
        holder=row["holder"],
        epoch=row["epoch"],
        expires_at=row["expires_at"],
        claimed_at=row["claimed_at"],
        gpu=gpu,
    )


def renew_holder(store: Store, agent_id: str, now: datetime, lease_seconds: float) -> int:
    """Extend every lease the agent holds; returns how many. The MCP server calls this on any
    call of a lease holder, so an agent that forgets to heartbeat while it works keeps its tasks."""
    limits.check(limits.LeaseSeconds, lease_seconds, "lease")
    expires = iso(now + timedelta(seconds=lease_seconds))

    def renew(conn: Conn) -> int:
        return conn.execute(
            "UPDATE tasks SET expires_at = ? WHERE state = 'claimed' AND holder = ? AND expires_at < ?",
            (expires, agent_id, expires),
        ).rowcount

    return store.write(renew)


RELEASE = (
    "state = 'pending', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
    "holder = NULL, claimed_at = NULL, expires_at = NULL, note = coalesce(?, note), updated_at = ?"
)


def release(
    store: Store,
    task_id: str,
    epoch: int,
    now: datetime,
    note: str | None = None,
    agent: str | None = None,
) -> Task:
    """Hand a claimed task back to pending without spending an attempt; raises LeaseLost,
    Forbidden (agent is not the holder) or NotFound."""
    _check_lease_args(task_id, epoch, note)

    def give_back(conn: Conn) -> Task:
        holder = _row(conn, task_id)["holder"]
        row = _fenced_update(conn, task_id, epoch, RELEASE, (note, iso(now)), agent)
        if row is None:
            _check_lease(conn, task_id, epoch, agent)
        conn.execute("DELETE FROM gpu_leases WHERE task_id = ?", (task_id,))
        _event(conn, task_id, now, holder, "released", epoch, note)
        return _to_task(conn, row)

    return store.write(give_back)


def force_release(store: Store, task_id: str, now: datetime, by: str, note: str) -> Task:
    """The operator takes a claimed task back from its holder (a stuck or lost agent), whatever
    the epoch; recorded in the task's log with who and why. Raises Conflict when not claimed."""
    limits.check(limits.Name, task_id, "task")
    limits.check(limits.Note, note, "note")
    if len(note.strip()) < 3:
        raise InvalidInput("say why (--note): a forced release is kept in the task's log")

    def take_back(conn: Conn) -> Task:
        row = _row(conn, task_id)
        if row["state"] != TaskState.claimed:
            raise Conflict(f"{task_id} is {row['state']}, not claimed: there is no lease to end")
        epoch = row["epoch"]
        after = _fenced_update(conn, task_id, epoch, RELEASE, (note, iso(now)))
        assert after is not None  # same transaction, the row was just read claimed at epoch
        conn.execute("DELETE FROM gpu_leases WHERE task_id = ?", (task_id,))
        detail = f"held by {row['holder']} (epoch {epoch}): {note}"
        _event(conn, task_id, now, by, "force-released", epoch, detail)
        return _to_task(conn, after)

    return store.write(take_back)


def _same_report(result: Result, status: str, payload: dict[str, Any], note: str | None) -> bool:
    return result.status == status and result.payload == payload and result.note == note


def result_id(task_id: str, key: str) -> str:
    return "res-" + hashlib.sha256(f"{task_id}\x1f{key}".encode()).hexdigest()[:12]


def record_result(
    conn: Conn,
    task_id: str,
    epoch: int,
    agent: str,
    status: Literal["done", "failed"],
    payload: dict[str, Any],
    note: str | None,
    key: str,
    now: datetime,
) -> Result:
    """Insert a result row inside the caller's transaction."""
    result = Result(
        id=result_id(task_id, key),
        task_id=task_id,
        epoch=epoch,
        agent=agent,
        status=status,
        payload=payload,
        note=note,
        idempotency_key=key,
        created_at=iso(now),
    )
    conn.execute(
        "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?)",
        (
            result.id,
            task_id,
            epoch,
            agent,
            status,
            json.dumps(payload, sort_keys=True),
            note,
            key,
            result.created_at,
        ),
    )
    return result


OWN_RESULT = "this"


def cite_own_result(findings: Sequence[NewFinding], result_id: str) -> list[NewFinding]:
    """A finding reported with its result may cite it before its id exists: run evidence with
    the locator "this" becomes the id of the result recorded with it."""
    out = []
    for f in findings:
        if any(e.kind == "run" and e.locator == OWN_RESULT for e in f.evidence):
            evidence = tuple(
                e.model_copy(update={"locator": result_id})
                if e.kind == "run" and e.locator == OWN_RESULT
                else e
                for e in f.evidence
            )
            f = f.model_copy(update={"evidence": evidence})
        out.append(f)
    return out


def report(
    store: Store,
    task_id: str,
    epoch: int,
    status: Literal["done", "failed"],
    now: datetime,
    payload: dict[str, Any] | None = None,
    note: str | None = None,
    idempotency_key: str | None = None,
    findings: Sequence[NewFinding] = (),
    agent: str | None = None,
) -> Result:
    """Record the attempt's result (and its findings) and finish the task. The same report twice
    is one result.

    Raises LeaseLost for a stale epoch, Forbidden when agent (the caller, when known) is not the
    holder or a finding carries a decision, Conflict for a different report under a used key.
    """
    _check_lease_args(task_id, epoch, note)
    payload = limits.check_json(payload or {}, "result", limits.MAX_RESULT_BYTES)
    key = idempotency_key or f"{task_id}@{epoch}"
    limits.check(limits.Title, key, "key")
    refuse_decisions(findings, agent or "the task's holder")

    def finish(conn: Conn) -> Result:
        live = conn.execute(  # locked: a concurrent reaper or retry waits for this report
            "SELECT holder, EXISTS (SELECT 1 FROM results WHERE id = ?), kind FROM tasks "
            "WHERE id = ? AND state = 'claimed' AND epoch = ?" + conn.dialect.lock_rows,
            (result_id(task_id, key), task_id, epoch),
        ).fetchone()
        if live is not None:
            _check_holder(task_id, live[0], epoch, agent)
        if live is None or live[1]:  # not the live lease, or this report is already recorded
            return _retried_report(conn, task_id, epoch, status, payload, note, key, agent)
        holder = live[0]
        result = record_result(conn, task_id, epoch, holder, status, payload, note, key, now)
        insert_findings(conn, cite_own_result(findings, result.id), holder, now, task_id)
        conn.execute(  # the lease is live and ours (checked above, under the lock)
            "UPDATE tasks SET state = ?, holder = NULL, claimed_at = NULL, expires_at = NULL, "
            "note = coalesce(?, note), updated_at = ? WHERE id = ?",
            (status, note, iso(now), task_id),
        )
        # a deploy that left a server running keeps its GPU lease as a hold (gpu_holds.py)
        if not gpu_holds.leaves_server(live[2], status, payload):
            conn.execute("DELETE FROM gpu_leases WHERE task_id = ?", (task_id,))
        elif conn.execute("SELECT 1 FROM gpu_leases WHERE task_id = ?", (task_id,)).fetchone():
            _event(conn, task_id, now, holder, "gpu held", epoch, "its server runs until teardown")
        gpu_holds.after_report(conn, task_id, live[2], now, holder, _event)
        _event(conn, task_id, now, holder, f"reported {status}", epoch, note)
        return result

    return store.write(finish)


def release_server(store: Store, deploy_id: str, now: datetime, actor: str, why: str) -> bool:
    """End the GPU hold of a deploy's server once it is stopped (`swarm deploy --task --down`);
    False when it held none. Raises NotFound for an unknown task."""

    def release(conn: Conn) -> bool:
        _row(conn, deploy_id)
        return gpu_holds.release(conn, deploy_id, now, actor, why, _event)

    return store.write(release)


def _retried_report(
    conn: Conn,
    task_id: str,
    epoch: int,
    status: str,
    payload: dict[str, Any],
    note: str | None,
    key: str,
    agent: str | None = None,
) -> Result:
    """The result a repeated report already recorded; else the Conflict, Forbidden or LeaseLost
    it is."""
    prior = conn.execute(
        "SELECT * FROM results WHERE id = ?", (result_id(task_id, key),)
    ).fetchone()
    if prior is None:
        _check_lease(conn, task_id, epoch, agent)
    existing = _to_result(prior)
    _check_holder(task_id, existing.agent, existing.epoch, agent)
    if _same_report(existing, status, payload, note):
        return existing  # a retried report: already recorded, nothing more to do
    raise Conflict(
        f"report key {key!r} was already used for result {existing.id} "
        f"({existing.status}) with different content; a task attempt reports once"
    )


# ---------------------------------------------------------------- reads


def get_task(store: Store, task_id: str) -> Task:
    return store.read(lambda conn: _to_task(conn, _row(conn, task_id)))


def list_tasks(
    store: Store,
    states: Iterable[str] = (),
    kinds: Iterable[str] = (),
    limit: int = 1000,
    after: str | None = None,
) -> list[Task]:
    """Tasks in insertion order; `after` is the last id of the previous page (a cursor)."""
    limits.check(limits.Page, limit, "limit")
    for field, values in (("state", states), ("kind", kinds), ("after", [after] if after else [])):
        for value in values:
            limits.check(limits.Name, value, field)
    clauses, params = ["1=1"], []
    for column, values in (("state", list(states)), ("kind", list(kinds))):
        if values:
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
            params.extend(values)
    if after:
        clauses.append("rowid > (SELECT rowid FROM tasks WHERE id = ?)")
        params.append(after)
    sql = f"SELECT {TASK_COLUMNS} FROM tasks WHERE {' AND '.join(clauses)} ORDER BY rowid LIMIT ?"

    def read(conn: Conn) -> list[Task]:
        return [_to_task(conn, row) for row in conn.execute(sql, [*params, limit])]

    return store.read(read)


def task_events(store: Store, task_id: str) -> list[Event]:
    def read(conn: Conn) -> list[Event]:
        _row(conn, task_id)
        rows = conn.execute("SELECT * FROM events WHERE task_id = ? ORDER BY seq", (task_id,))
        return [Event(**dict(r)) for r in rows]

    return store.read(read)


def task_results(store: Store, task_id: str) -> list[Result]:
    def read(conn: Conn) -> list[Result]:
        _row(conn, task_id)
        rows = conn.execute(
            "SELECT * FROM results WHERE task_id = ? ORDER BY created_at", (task_id,)
        )
        return [_to_result(r) for r in rows]

    return store.read(read)
