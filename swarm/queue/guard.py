"""Who may not claim a guarded task: the claim's side of replication (swarm.lab.replication).

A replication task is written with the agents and hosts behind its conflict's sides, and the GPU
and deployment it must run on (tables replications and replication_tasks); the claim asks
`refusal` for each guarded task it considers and passes over the task when told why not.
Here, in the queue, so that the claim never imports the lab layer that writes those rows.
"""

from __future__ import annotations

import json

from swarm.core.models import Capabilities, Requires
from swarm.db.store import Conn
from swarm.queue.routing import gpu_matches


def refusal(conn: Conn, task_id: str, agent_id: str, caps: Capabilities) -> str | None:
    """Why this agent may not run a guarded task (None: it may). Called by the claim only for
    tasks listed in replication_tasks."""
    found = conn.execute(
        "SELECT r.origins, r.hosts, r.gpu, r.deploy_task, r.task_id FROM replication_tasks g "
        "JOIN replications r ON r.key = g.replication WHERE g.task_id = ?",
        (task_id,),
    ).fetchone()
    if found is None:
        return None
    origins, hosts, gpu, deploy_task, bench = found
    if agent_id in json.loads(origins):
        return "an agent that is no side's origin (a replication)"
    if caps.host in json.loads(hosts):
        return "an agent on a host that is no side's origin (a replication)"
    if gpu and not runs_on(caps, gpu, None):
        return f"a {gpu} host (a replication)"
    if deploy_task and task_id == bench:  # measure the server where the deployment runs
        where = _deployed_host(conn, deploy_task)
        if where is not None and where != caps.host:
            return f"an agent on {where}, where its deployment runs (a replication)"
    return None


def _deployed_host(conn: Conn, deploy_task: str) -> str | None:
    row = conn.execute(
        "SELECT a.capabilities FROM results r JOIN agents a ON a.id = r.agent "
        "WHERE r.task_id = ? AND r.status = 'done' ORDER BY r.created_at DESC",
        (deploy_task,),
    ).fetchone()
    if row is None:
        return None
    try:
        return Capabilities.model_validate_json(row[0]).host
    except ValueError:
        return None


def runs_on(caps: Capabilities, gpu: str | None, arch: str | None) -> bool:
    """The agent has the GPU, or failing a name one of the arch: matched as claims match them."""
    if gpu is None and arch is None:
        return False
    wanted = Requires(gpu=gpu, arch=None if gpu else arch)
    return any(gpu_matches(g, wanted) for g in caps.gpus)
