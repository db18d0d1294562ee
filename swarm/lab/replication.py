"""Conflicts create their own resolution work (issue #19).

After a reconcile, `sync` makes sure every open (or deferred) conflict has one task that can settle
it: a measurable one (a benchmark predicate with a deployment scope) gets a `benchmark` task, with
a `deploy` task when no deployment is up, routed to hardware matching the scope; any other gets a
`research` task asking for a primary source with a quote. A task is keyed by what it settles
(PURPOSE:FACT KEY), never by the conflict's id, which changes when an unrelated finding arrives.

Who may run it is derived, not declared: the agents behind the conflict's sides (who recorded
them, who ran their runs) and, where the lab has another host with matching hardware, their hosts
are written beside the task, and the claim passes over it for them (swarm/queue/guard.py). The run's findings
reach the reconciler as local evidence marked with the key it replicates; swarm/facts/reconcile.py
settles by it (`replication by … agrees with side N`) or keeps the conflict open with the new side.

A decided conflict cancels its pending task; a person can cancel one (`cancel`). Versions: a host
registered with a newer engine or driver than a verified fact's runs used makes the fact `stale`
(`mark_stale`) and `sync` queues its re-measurement there, most-cited first, a few per GPU per day.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from swarm import SCHEMA_VERSION
from swarm.core.errors import InvalidInput, NotFound
from swarm.core.models import Agent, Capabilities, Model, NewTask, Requires, TaskState, iso
from swarm.db.store import Conn, Store
from swarm.facts.citations import Check
from swarm.facts.reconcile import Conflict, Fact, FactsFile, FactStatus, newer_environment
from swarm.queue import queue
from swarm.queue.guard import runs_on as _runs_on

BENCHMARK_PREDICATES = frozenset({"decode_tps_single_stream", "throughput_tps_batched"})
MAX_PER_GPU_DAY = 3  # re-measurements queued per matching GPU of the lab per day, by default
PRIORITY = 2  # above the verify pass (1), below kernel builds (5)
ACTOR = "swarm facts"
# Disputes about what is true, which a measurement or a source can settle. A possible alias or
# an unknown spelling is a question about names: a person answers it, no run does.
SETTLED_BY_WORK = frozenset(
    {"numeric disagreement", "value disagreement", "physically implausible", "claim vs measurement"}
)

Purpose = Literal["replicate", "research", "remeasure"]


class Replication(Model):
    """One thing a conflict (or a stale fact) made the lab do, and its task's live state."""

    key: str = Field(description="what it settles: PURPOSE:FACT KEY")
    purpose: Purpose
    fact_key: str
    conflict: str | None = Field(None, description="the conflict as named when it was queued")
    task_id: str
    deploy_task: str | None = None
    gpu: str | None = Field(None, description="the GPU (canonical name) the run must be on")
    origins: tuple[str, ...] = Field((), description="agents that may not run it")
    hosts: tuple[str, ...] = Field((), description="hosts it may not run on")
    note: str | None = None
    created_at: str
    cancelled_by: str | None = None
    state: TaskState | None = Field(None, description="the task's state now")
    holder: str | None = None
    blocked_by: tuple[str, ...] = ()


class SyncReport(Model):
    queued: tuple[str, ...] = Field((), description="replication keys queued by this pass")
    cancelled: tuple[str, ...] = Field((), description="task ids cancelled by this pass")
    stale: tuple[str, ...] = Field((), description="stale facts whose re-measurement waits")


COLUMNS = (
    "key, purpose, fact_key, conflict, task_id, deploy_task, gpu, origins, hosts, note, "
    "created_at, cancelled_by"
)


def _row_model(row: Any) -> Replication:
    data = dict(zip([c.strip() for c in COLUMNS.split(",")], tuple(row), strict=True))
    data["origins"] = tuple(json.loads(data["origins"]))
    data["hosts"] = tuple(json.loads(data["hosts"]))
    return Replication(**data)


def _rows(conn: Conn) -> dict[str, Replication]:
    return {
        r.key: r
        for r in map(_row_model, conn.execute(f"SELECT {COLUMNS} FROM replications ORDER BY key"))
    }


# ---------------------------------------------------------------- what a conflict needs


def anchor(conflict: Conflict, facts: Mapping[str, Fact]) -> str:
    """The key a conflict is about: its one key, or (claim vs measurement) the claim's key.
    Measurements that join the dispute later add keys; the anchor stays."""
    if len(conflict.keys) == 1:
        return conflict.keys[0]
    first = set(conflict.sides[0].findings)
    for key in conflict.keys:
        fact = facts.get(key)
        if fact is not None and first & set(fact.findings):
            return key
    return conflict.keys[0]


def measurable(fact: Fact) -> bool:
    """A benchmark can re-measure it: a benchmark predicate of a deployment (engine and GPU)."""
    scope = fact.scope
    return (
        fact.predicate in BENCHMARK_PREDICATES
        and "platform" in scope
        and ("gpu" in scope or "arch" in scope)
    )


def _gpu_arch(scope: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(canonical GPU, arch) the scope names; the arch from the hardware registry if unsaid."""
    from swarm.facts.registry import project

    reg = project()
    gpu = str(reg.gpu_name(str(scope["gpu"]))) if "gpu" in scope else None
    arch = str(scope["arch"]) if "arch" in scope else None
    if arch is None and gpu is not None and gpu in reg.hardware.gpu:
        arch = reg.hardware.gpu[gpu].arch
    return gpu, arch


class _Lab:
    """What sync reads once: the registered agents, and who stands behind each finding."""

    def __init__(self, conn: Conn, checks: Mapping[tuple[str, int], Check]) -> None:
        self.agents: dict[str, Capabilities] = {}
        for row in conn.execute("SELECT id, capabilities FROM agents ORDER BY id"):
            try:
                self.agents[row[0]] = Capabilities.model_validate_json(row[1])
            except ValueError:
                continue  # a row that no longer parses stands for no host
        self.conn = conn
        self.checks = checks
        self.spelling: dict[str, int] = {}  # the subject as the sides wrote it (a recipe reads it)

    def subject(self, fallback: str) -> str:
        """The most written spelling of the last findings read (ties: the first in order)."""
        best = sorted(self.spelling.items(), key=lambda kv: (-kv[1], kv[0]))
        self.spelling = {}
        return best[0][0] if best else fallback

    def origins(self, finding_ids: Iterable[str]) -> tuple[set[str], set[str]]:
        """(agents, hosts) behind these findings: who recorded them, who ran the runs they cite,
        and where those agents are registered."""
        ids = sorted(set(finding_ids))
        agents: set[str] = set()
        hosts: set[str] = set()
        self.spelling = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            sql = f"SELECT agent, subject FROM findings WHERE id IN ({','.join('?' * len(part))})"
            for agent, subject in self.conn.execute(sql, part):
                agents.add(agent)
                self.spelling[subject] = self.spelling.get(subject, 0) + 1
        for fid in ids:
            for origin in self.run_origins.get(fid, ()):
                agent, host = origin.rsplit("@", 1)
                agents.add(agent)
                if host != "?":
                    hosts.add(host)
        hosts.update(self.agents[a].host for a in agents if a in self.agents)
        return agents, hosts

    @functools.cached_property
    def run_origins(self) -> dict[str, set[str]]:
        """finding id -> agent@host of the runs and tests it cites (one walk over the checks)."""
        out: dict[str, set[str]] = {}
        for (fid, _), check in self.checks.items():
            if check.origin and "@" in check.origin:
                out.setdefault(fid, set()).add(check.origin)
        return out

    def other_host(self, hosts: set[str], gpu: str | None, arch: str | None) -> bool:
        """Does the lab have a host outside `hosts` with hardware matching the scope?"""
        return any(
            c.host not in hosts and (_runs_on(c, gpu, arch) if gpu or arch else True)
            for c in self.agents.values()
        )


# ---------------------------------------------------------------- queueing


def _dispute(conflict: Conflict, fact: Fact, agents: set[str], note: str | None) -> dict[str, Any]:
    return {
        "conflict": conflict.id,
        "key": fact.key,
        "reason": conflict.reason,
        "values": [s.value for s in conflict.sides],
        "unit": fact.unit,
        "scope": dict(fact.scope),
        "origins": sorted(agents),
        "note": note,
    }


def _sides_text(conflict: Conflict, unit: str | None) -> str:
    return "; ".join(
        f"side {i} says {s.value}{' ' + unit if unit else ''} ({len(s.findings)} finding"
        f"{'s' if len(s.findings) != 1 else ''})"
        for i, s in enumerate(conflict.sides, 1)
    )


def _deployment_up(conn: Conn, spec: dict[str, Any], hosts: set[str], lab: _Lab) -> str | None:
    """A done deploy task for this deployment whose result names an endpoint it kept up, on a
    host the replication may use; its id, or None."""
    from swarm.queue.specs import dedupe_key

    key = dedupe_key("deploy", spec, None)
    rows = conn.execute(
        "SELECT t.id, r.agent, r.payload FROM tasks t JOIN results r ON r.task_id = t.id "
        "WHERE t.dedupe_key = ? AND t.state = 'done' AND r.status = 'done' "
        "ORDER BY r.created_at DESC",
        (key,),
    ).fetchall()
    for task_id, agent, payload in rows:
        body = json.loads(payload)
        up = isinstance(body.get("endpoint"), str) and body.get("keep")
        host = lab.agents[agent].host if agent in lab.agents else None
        if up and host is not None and host not in hosts:
            return str(task_id)
    return None


def _queue_one(
    conn: Conn,
    conflict: Conflict,
    fact: Fact,
    lab: _Lab,
    now: datetime,
) -> Replication:
    """Insert the task(s) that can settle one conflict, and the row that guards them."""
    agents, hosts = lab.origins(f for s in conflict.sides for f in s.findings)
    model = lab.subject(fact.subject)  # right after origins: the spellings it just read
    if not measurable(fact):
        return _queue_research(conn, conflict, fact, agents, now)
    return _queue_replication(conn, conflict, fact, lab, model, (agents, hosts), now)


def _queue_research(
    conn: Conn, conflict: Conflict, fact: Fact, agents: set[str], now: datetime
) -> Replication:
    """A research task: find a primary source with a quote that settles the conflict."""
    key = f"research:{fact.key}"
    question = (
        f"Settle {conflict.id} ({conflict.reason}) on {fact.subject} {fact.predicate} "
        f"({_scope(fact)}): {_sides_text(conflict, fact.unit)}. Find a primary source (vendor "
        "documentation, upstream code, an upstream issue) and record a finding citing it with "
        "a quote that contains the value; a secondary write-up settles nothing."
    )
    new = NewTask(
        kind="research",
        title=f"find a primary source to settle {conflict.id}: {fact.subject} {fact.predicate}",
        spec={
            "question": question,
            "scope": {k: str(v) for k, v in fact.scope.items()},
            "dispute": _dispute(conflict, fact, agents, None),
        },
        priority=PRIORITY,
        dedupe_key=f"settle-{_digest(key)}",
    )
    task_id = queue.insert_task(conn, new, now, ACTOR)
    return _insert_row(conn, key, "research", fact, conflict.id, task_id, None, None,
                       agents, set(), None, iso(now))  # fmt: skip


def _queue_replication(
    conn: Conn,
    conflict: Conflict,
    fact: Fact,
    lab: _Lab,
    model: str,
    origins: tuple[set[str], set[str]],
    now: datetime,
) -> Replication:
    """A benchmark re-measuring the fact on matching hardware, after a deploy unless one is up."""
    agents, hosts = origins
    gpu, arch = _gpu_arch(fact.scope)
    note = None
    if hosts and not lab.other_host(hosts, gpu, arch):
        note = (
            f"no host of the lab outside the sides' ({', '.join(sorted(hosts)) or 'none'}) has "
            f"{gpu or arch}: any agent that is no side's origin may run it, on any host"
        )
        hosts = set()
    key = f"replicate:{fact.key}"
    deployment = _deployment(fact, gpu, model)
    requires = Requires(arch=arch) if arch else Requires()
    up = _deployment_up(conn, deployment, hosts, lab)
    deploy_task = up
    if up is None:
        deploy_task = _queue_deploy(conn, conflict, fact, deployment, requires, key, now)
    what = "single-stream decode" if fact.predicate == "decode_tps_single_stream" else "batched"
    bench = NewTask(
        kind="benchmark",
        title=f"re-measure {fact.subject} {what} on {deployment['gpu']} to settle {conflict.id} "
        f"({' vs '.join(str(s.value) for s in conflict.sides)} {fact.unit or ''})".rstrip(),
        spec={
            **deployment,
            "deploy_task": deploy_task,
            "replication": _dispute(conflict, fact, agents, note),
        },
        requires=requires.model_copy(update={"exclusive": True}) if arch else requires,
        depends_on=(deploy_task,) if up is None and deploy_task else (),
        priority=PRIORITY + 1,  # above its deploy, as in the catalog: measure, tear down, next
        dedupe_key=f"settle-{_digest(key)}",
    )
    task_id = queue.insert_task(conn, bench, now, ACTOR, note=note)
    return _insert_row(conn, key, "replicate", fact, conflict.id, task_id, deploy_task, gpu,
                       agents, hosts, note, iso(now), guard_deploy=up is None)  # fmt: skip


def _deployment(fact: Fact, gpu: str | None, model: str) -> dict[str, Any]:
    """The deployment the fact's scope names (GPU, model, engine, TP, quant), as a task spec."""
    deployment: dict[str, Any] = {
        "gpu": gpu or str(fact.scope.get("gpu", "")),
        "model": model,
        "platform": str(fact.scope["platform"]),
        "tp": int(fact.scope.get("tp", 1)) if str(fact.scope.get("tp", 1)).isdigit() else 1,
    }
    if "quant" in fact.scope:
        deployment["quant"] = str(fact.scope["quant"])
    return deployment


def _queue_deploy(
    conn: Conn,
    conflict: Conflict,
    fact: Fact,
    deployment: dict[str, Any],
    requires: Requires,
    key: str,
    now: datetime,
) -> str:
    """The deploy task the re-measurement waits for, when no such server is up."""
    new = NewTask(
        kind="deploy",
        title=f"deploy {fact.subject} on {deployment['gpu']} ({deployment['platform']}) "
        f"to re-measure {conflict.id}",
        spec=deployment,
        requires=requires,
        priority=PRIORITY,
        dedupe_key=f"settle-{_digest(key)}",
    )
    return queue.insert_task(conn, new, now, ACTOR)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _scope(fact: Fact) -> str:
    return ", ".join(f"{k}={v}" for k, v in fact.scope.items()) or "any scope"


def _insert_row(
    conn: Conn,
    key: str,
    purpose: Purpose,
    fact: Fact,
    conflict: str | None,
    task_id: str,
    deploy_task: str | None,
    gpu: str | None,
    agents: set[str],
    hosts: set[str],
    note: str | None,
    stamp: str,
    guard_deploy: bool = False,
) -> Replication:
    row = Replication(
        key=key,
        purpose=purpose,
        fact_key=fact.key,
        conflict=conflict,
        task_id=task_id,
        deploy_task=deploy_task,
        gpu=gpu,
        origins=tuple(sorted(agents)),
        hosts=tuple(sorted(hosts)),
        note=note,
        created_at=stamp,
    )
    conn.execute(
        f"INSERT INTO replications ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (key, purpose, fact.key, conflict, task_id, deploy_task, gpu, json.dumps(row.origins),
         json.dumps(row.hosts), note, stamp, None),
    )  # fmt: skip
    guarded = [task_id] + ([deploy_task] if guard_deploy and deploy_task else [])
    conn.executemany(
        "INSERT INTO replication_tasks (task_id, replication) VALUES (?, ?)",
        [(t, key) for t in guarded],
    )
    return row


def _cancel_pending(conn: Conn, row: Replication, now: datetime, actor: str, why: str) -> list[str]:
    """Cancel the row's tasks that nobody holds yet; the ids cancelled."""
    out = []
    for task_id in (row.task_id, row.deploy_task):
        guarded = conn.execute(
            "SELECT 1 FROM replication_tasks WHERE task_id = ? AND replication = ?",
            (task_id, row.key),
        ).fetchone()
        if task_id and guarded and queue.cancel_pending(conn, task_id, now, actor, why):
            out.append(task_id)
    return out


def _refresh(
    conn: Conn, row: Replication, conflict: Conflict, fact: Fact, lab: _Lab
) -> Replication:
    """A finding that joined the dispute since it was queued makes its agent (and host) an
    origin too; a host registered since with the GPU lets the origins' hosts be excluded."""
    agents, hosts = lab.origins(f for s in conflict.sides for f in s.findings)
    agents |= set(row.origins)
    if row.purpose == "replicate":
        gpu, arch = _gpu_arch(fact.scope)
        hosts = (
            (hosts | set(row.hosts)) if lab.other_host(hosts | set(row.hosts), gpu, arch) else set()
        )
    else:
        hosts = set(row.hosts)
    if agents == set(row.origins) and hosts == set(row.hosts):
        return row
    note = row.note if not hosts or row.hosts else None  # the lab has another host now
    conn.execute(
        "UPDATE replications SET origins = ?, hosts = ?, note = ? WHERE key = ?",
        (json.dumps(sorted(agents)), json.dumps(sorted(hosts)), note, row.key),
    )
    return row.model_copy(
        update={"origins": tuple(sorted(agents)), "hosts": tuple(sorted(hosts)), "note": note}
    )


def _revive(conn: Conn, row: Replication, conflict: Conflict, now: datetime) -> bool:
    """Tasks this pass cancelled (their conflict was decided, or its dispute ended) go back to
    pending when it is open again; a person's cancel is never undone here."""
    why = f"{conflict.id} is {conflict.state} again"
    revived = [
        queue.revive_cancelled(conn, task_id, now, ACTOR, why)
        for task_id in (row.task_id, row.deploy_task)
        if task_id
        and conn.execute(
            "SELECT 1 FROM replication_tasks WHERE task_id = ? AND replication = ?",
            (task_id, row.key),
        ).fetchone()
    ]
    return any(revived)


# ---------------------------------------------------------------- the pass


def sync(
    store: Store,
    facts: FactsFile,
    checks: Mapping[tuple[str, int], Check],
    now: datetime,
    max_per_gpu_day: int = MAX_PER_GPU_DAY,
) -> SyncReport:
    """Queue what each open or deferred conflict needs (once), cancel what a decided or vanished
    conflict no longer needs, and queue re-measurement of stale facts within the rate limit.
    One transaction: nothing half-queued survives a crash."""
    if max_per_gpu_day < 0:
        raise InvalidInput("--max-replications must be 0 or more (per GPU per day)")
    by_key = {f.key: f for f in facts.facts if f.status != FactStatus.superseded}

    def run(conn: Conn) -> SyncReport:
        if conn.dialect.host_lock:  # PostgreSQL: two passes at once would queue a task twice
            conn.execute(conn.dialect.host_lock, ("swarm-replications",))
        lab = _Lab(conn, checks)
        rows = _rows(conn)
        queued: list[str] = []
        cancelled: list[str] = []
        wanted: set[str] = set()
        for conflict in facts.conflicts:
            fact = by_key.get(anchor(conflict, by_key))
            if fact is None or conflict.reason not in SETTLED_BY_WORK:
                continue
            key = f"{'replicate' if measurable(fact) else 'research'}:{fact.key}"
            if conflict.state == "decided":
                if key in rows:
                    why = f"{conflict.id} was decided: {conflict.decision}"
                    cancelled += _cancel_pending(conn, rows[key], now, ACTOR, why[:400])
                continue
            wanted.add(key)
            if key not in rows:
                rows[key] = _queue_one(conn, conflict, fact, lab, now)
                queued.append(key)
            else:
                rows[key] = _refresh(conn, rows[key], conflict, fact, lab)
                if rows[key].cancelled_by is None and _revive(conn, rows[key], conflict, now):
                    queued.append(key)  # disputed again (a decision lapsed): the same tasks
        for key, row in rows.items():  # a dispute that is gone (settled by new evidence)
            if row.purpose != "remeasure" and key not in wanted:
                why = f"no longer disputed: {row.fact_key} has no open conflict"
                cancelled += _cancel_pending(conn, row, now, ACTOR, why[:400])
        stale, more = _remeasure(conn, facts, rows, lab, now, max_per_gpu_day)
        return SyncReport(
            queued=tuple(queued + more), cancelled=tuple(cancelled), stale=tuple(stale)
        )

    return store.write(run)


# ---------------------------------------------------------------- the claim path


# ---------------------------------------------------------------- reads and a person's cancel


def _with_state(conn: Conn, row: Replication) -> Replication:
    task = conn.execute("SELECT state, holder FROM tasks WHERE id = ?", (row.task_id,)).fetchone()
    blocked = [
        r[0]
        for r in conn.execute(
            "SELECT d.depends_on FROM task_deps d JOIN tasks p ON p.id = d.depends_on "
            "WHERE d.task_id = ? AND p.state != 'done' ORDER BY d.depends_on",
            (row.task_id,),
        )
    ]
    return row.model_copy(
        update={"state": TaskState(task[0]), "holder": task[1], "blocked_by": tuple(blocked)}
    )


def list_replications(store: Store) -> list[Replication]:
    """Every replication with its task's state, by key."""
    return store.read(lambda conn: [_with_state(conn, r) for r in _rows(conn).values()])


def for_conflicts(store: Store, conflicts: Iterable[Conflict]) -> dict[str, Replication]:
    """conflict id -> the replication (or research) queued for it, with its task's state: the
    row queued under this conflict's name, else the one of its only key, else (a conflict of
    several keys) the research queued for one of them."""
    rows: dict[str, list[Replication]] = {}
    for r in list_replications(store):
        if r.purpose != "remeasure":
            rows.setdefault(r.fact_key, []).append(r)
    out = {}
    for conflict in conflicts:
        mine = [r for k in conflict.keys for r in rows.get(k, ())]
        named = [r for r in mine if r.conflict == conflict.id]
        chosen = named or (
            mine if len(conflict.keys) == 1 else [r for r in mine if r.purpose == "research"]
        )
        if chosen:
            out[conflict.id] = chosen[0]
    return out


def cancel(
    store: Store,
    conflicts: Sequence[Conflict],
    conflict_id: str,
    reason: str,
    by: str,
    now: datetime,
) -> Replication:
    """A person cancels a conflict's pending replication; sync never queues it again.

    Raises NotFound (no such conflict, or none queued for it) or InvalidInput (no reason).
    """
    if len(reason.strip()) < 3:
        raise InvalidInput("say why (--reason): a cancelled replication is kept with its reason")
    row = for_conflicts(store, conflicts).get(conflict_id)
    if row is None:
        known = ", ".join(c.id for c in conflicts) or "none"
        raise NotFound(f"no replication queued for {conflict_id!r} (conflicts: {known})")

    def run(conn: Conn) -> Replication:
        _cancel_pending(conn, row, now, by, f"cancelled by {by}: {reason}"[:400])
        conn.execute("UPDATE replications SET cancelled_by = ? WHERE key = ?", (by, row.key))
        return _with_state(conn, row.model_copy(update={"cancelled_by": by}))

    return store.write(run)


# ---------------------------------------------------------------- versions and staleness


class Stack(Model):
    """What one host of the lab runs: its GPUs (canonical names and archs), driver and engines."""

    host: str
    gpus: tuple[str, ...] = ()
    archs: tuple[str, ...] = ()
    driver: str | None = None
    engines: dict[str, str] = {}


def stacks(agents: Iterable[Agent]) -> dict[str, Stack]:
    """host -> its stack, from the registered agents (the latest registration of a host wins)."""
    from swarm.facts.registry import project

    reg = project()
    out: dict[str, Stack] = {}
    for agent in sorted(agents, key=lambda a: (a.registered_at, a.id)):
        caps = agent.capabilities
        if not caps.driver and not caps.engines:
            continue
        out[caps.host] = Stack(
            host=caps.host,
            gpus=tuple(sorted({reg.gpu_name(g.name) for g in caps.gpus})),
            archs=tuple(sorted({g.arch.rstrip("af") for g in caps.gpus if g.arch})),
            driver=caps.driver,
            engines={str(reg.canonical("platform", k)): v for k, v in caps.engines.items()},
        )
    return out


def lab_stacks(store: Store | None, kept: Path) -> dict[str, Stack]:
    """The stacks git keeps (facts/stacks.json), updated by the store's registered agents: a
    fresh clone marks the same facts stale as the lab that wrote them."""
    out: dict[str, Stack] = {}
    if kept.exists():
        try:
            for item in json.loads(kept.read_text(encoding="utf-8")).get("hosts", []):
                stack = Stack.model_validate(item)
                out[stack.host] = stack
        except ValueError:
            pass  # a file this version cannot read is rewritten from the store
    if store is not None:
        from swarm.queue.agents import list_agents

        out.update(stacks(list_agents(store)))
    return out


def stacks_text(lab: Mapping[str, Stack]) -> str:
    hosts = [lab[h].model_dump(mode="json") for h in sorted(lab)]
    return (
        json.dumps({"schema_version": SCHEMA_VERSION, "hosts": hosts}, indent=2, sort_keys=True)
        + "\n"
    )


def _newer_host(
    fact: Fact, env: Mapping[str, str], lab: Mapping[str, Stack]
) -> tuple[str, str] | None:
    """(host, what is newer there) for the first host matching the fact's scope that runs a
    newer engine or driver than the fact's runs recorded."""
    gpu, arch = fact.scope.get("gpu"), fact.scope.get("arch")
    platform = fact.scope.get("platform")
    for host in sorted(lab):
        stack = lab[host]
        if gpu is not None and gpu not in stack.gpus:
            continue
        if arch is not None and str(arch).rstrip("af") not in stack.archs:
            continue
        offered: dict[str, str] = {}
        if stack.driver:
            offered["driver"] = stack.driver
        if isinstance(platform, str) and platform in stack.engines:
            offered["engine"] = platform
            offered["engine_version"] = stack.engines[platform]
        step = newer_environment(offered, env)
        if step:
            return host, step
    return None


def _environment(fact: Fact, checks: Mapping[tuple[str, int], Check]) -> dict[str, str]:
    """The stack the fact's local runs recorded (the newest values where they differ)."""
    env: dict[str, str] = {}
    wanted = set(fact.findings)
    for (fid, _), check in sorted(checks.items()):
        if fid in wanted and check.strength == "local":
            for k, v in check.environment.items():
                if k not in env or newer_environment({k: v}, {k: env[k]}):
                    env[k] = v
    return env


def mark_stale(
    facts: FactsFile, checks: Mapping[tuple[str, int], Check], lab: Mapping[str, Stack]
) -> FactsFile:
    """Verified facts measured on an older engine or driver than a host of the lab now runs for
    their scope become `stale` (not wrong): the value stands until it is re-measured."""
    if not lab:
        return facts
    out = []
    for fact in facts.facts:
        if fact.status == FactStatus.verified:
            env = _environment(fact, checks)
            found = _newer_host(fact, env, lab) if env else None
            if found is not None:
                host, step = found
                fact = fact.model_copy(
                    update={
                        "status": FactStatus.stale,
                        "decided_by": f"rule: stale: {host} runs {step}; re-measure there "
                        f"(was: {fact.decided_by.removeprefix('rule: ')})",
                    }
                )
        out.append(fact)
    return facts.model_copy(update={"facts": tuple(out)})


def _remeasure(
    conn: Conn,
    facts: FactsFile,
    rows: dict[str, Replication],
    lab: _Lab,
    now: datetime,
    max_per_gpu_day: int,
) -> tuple[list[str], list[str]]:
    """Queue re-measurement of stale facts, most-cited first, at most max_per_gpu_day per
    matching GPU of the host with the newer stack per day; (stale fact keys still waiting,
    replication keys queued)."""
    marked = [
        f for f in facts.facts if f.status == FactStatus.stale and "rule: stale: " in f.decided_by
    ]
    todo = [f for f in marked if _remeasure_key(f) not in rows and measurable(f)]
    todo.sort(key=lambda f: (-sum(e.findings for e in f.evidence), -len(f.findings), f.key))
    since = iso(now - timedelta(days=1))
    recent: dict[str, int] = {}
    for r in rows.values():
        if r.purpose == "remeasure" and r.created_at > since:  # a day ago is yesterday
            recent[r.gpu or ""] = recent.get(r.gpu or "", 0) + 1
    queued, waiting = [], []
    for fact in todo:
        gpu, arch = _gpu_arch(fact.scope)
        host = fact.decided_by.removeprefix("rule: stale: ").split(" ", 1)[0]
        # the GPUs of the host that runs the newer stack: each does a few a day, no more
        on_host = {g.uuid: g for c in lab.agents.values() if c.host == host for g in c.gpus}
        gpus = sum(
            1 for g in on_host.values() if _runs_on(Capabilities(host=host, gpus=(g,)), gpu, arch)
        )
        if recent.get(gpu or "", 0) >= max_per_gpu_day * max(gpus, 1):
            waiting.append(fact.key)
            continue
        row = _queue_remeasure(conn, fact, host, gpu, arch, now)
        rows[row.key] = row
        recent[gpu or ""] = recent.get(gpu or "", 0) + 1
        queued.append(row.key)
    return waiting, queued


def _stale_why(fact: Fact) -> str:
    """'host-b runs vllm 0.12.0 (was 0.11.0)' from a stale fact's rule."""
    return fact.decided_by.removeprefix("rule: stale: ").split(";", 1)[0]


def _remeasure_key(fact: Fact) -> str:
    """One re-measurement per fact and newer stack: a still newer one later queues another."""
    return f"remeasure:{fact.key}@{_stale_why(fact)}"


def _queue_remeasure(
    conn: Conn, fact: Fact, host: str, gpu: str | None, arch: str | None, now: datetime
) -> Replication:
    key = _remeasure_key(fact)
    why = _stale_why(fact)
    spec: dict[str, Any] = {
        "gpu": gpu or str(fact.scope.get("gpu", "")),
        "model": fact.subject,
        "platform": str(fact.scope["platform"]),
    }
    if "quant" in fact.scope:
        spec["quant"] = str(fact.scope["quant"])
    requires = Requires(arch=arch, host=host) if arch else Requires(host=host)
    deploy = queue.insert_task(
        conn,
        NewTask(kind="deploy", title=f"deploy {fact.subject} on {host} to re-measure it",
                spec=spec, requires=requires, priority=PRIORITY - 1,
                dedupe_key=f"remeasure-{_digest(key)}"),
        now, ACTOR,
    )  # fmt: skip
    task_id = queue.insert_task(
        conn,
        NewTask(kind="benchmark", title=f"re-measure {fact.subject} {fact.predicate} on {host}: "
                f"stale since {why}", spec={**spec, "deploy_task": deploy},
                requires=requires, depends_on=(deploy,), priority=PRIORITY - 1,
                dedupe_key=f"remeasure-{_digest(key)}"),
        now, ACTOR,
    )  # fmt: skip
    return _insert_row(conn, key, "remeasure", fact, None, task_id, deploy, gpu, set(), set(),
                       f"stale: {why}", iso(now), guard_deploy=True)  # fmt: skip


def describe(row: Replication) -> str:
    """One line for people: 'replication bench-1a2b3c (pending, waits for deploy-…)'."""
    kind = {"replicate": "replication", "research": "research", "remeasure": "re-measurement"}
    state = str(row.state or "?")
    if row.blocked_by and row.state == TaskState.pending:
        state += f", waits for {', '.join(row.blocked_by)}"
    if row.holder:
        state += f" by {row.holder}"
    if row.cancelled_by:
        state += f", cancelled by {row.cancelled_by}"
    line = f"{kind[row.purpose]} {row.task_id} ({state})"
    if row.origins:
        line += f"; not for its origins: {', '.join(row.origins)}"
    if row.hosts:
        line += f"; not on {', '.join(row.hosts)}"
    if row.note:
        line += f"; {row.note}"
    return line
