"""What every MCP tool call needs: the Lab (store, settings, the caller as its connection
proves it) and its detached jobs (swarm/queue/jobs.py). No tools here: queue_tools.py and
lab_tools.py register them.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from swarm import SCHEMA_VERSION
from swarm.core.errors import SwarmError
from swarm.core.models import (
    Model,
    NewTask,
)
from swarm.core.settings import Settings, repo_root
from swarm.db.store import open_store
from swarm.queue import auth, queue, worker
from swarm.queue.auth import Principal, Role

T = TypeVar("T")

PRINCIPAL = "swarm.principal"  # the ASGI scope key swarm/mcp/http.py puts the caller under
WHERE = {  # where a missing executable is found, for TOOL_MISSING's next step
    "nvcc": ("build_kernel", "a host with CUDA", "kernel"),
    "docker": ("deploy", "a host with Docker", "deploy"),
}


class JobStarted(Model):
    """A long action runs as a detached job on a task of its own; get_task(job) shows it."""

    schema_version: int = SCHEMA_VERSION
    job: str = Field(description="task id: get_task(job) shows state and result")
    state: Literal["running"] = "running"
    started_by: str


class Lab:
    """What every tool call needs: the store (safe to share between the tool threads), the
    settings, and who the caller is when the connection does not say (stdio, in memory)."""

    def __init__(self, settings: Settings, agent: str | None = None, http: bool = False) -> None:
        self.settings = settings
        self.store = open_store(settings.db)
        self.repo = repo_root(Path.cwd())
        self.http = http
        named = agent or os.environ.get("SWARM_AGENT")
        given = "given to this server" if agent else "set by SWARM_AGENT"
        # One name for the server's whole life: made here, once, never from the per-request
        # session object (mcp 2.3 makes a fresh one per request: 30 calls were 27 agents).
        name = named or auth.stdio_name(auth.parent_program(), os.uname().nodename)
        self.local = Principal(name=self.call(lambda: auth.check_name(name)), role=Role.agent)
        self.source = given if named else "made when this server started"
        self._server_agent: str | None = None
        self.stop = threading.Event()
        self.jobs: list[threading.Thread] = []

    def call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except SwarmError as exc:
            raise ToolError(f"{exc.code()}: {exc}") from exc

    def require_repo(self) -> Path:
        """The lab repository, for the tools that work on its files."""
        if self.repo is None:
            raise ToolError("NO_REPO: the server was not started inside the lab's git repository")
        return self.repo

    def principal(self, ctx: Context) -> Principal:
        """The caller as the connection proves it: the bearer token's principal over HTTP, this
        server's one identity over stdio."""
        try:
            request = ctx.request_context.request
        except ValueError:  # no request: an in-process call
            request = None
        scope = getattr(request, "scope", None)
        found = scope.get(PRINCIPAL) if isinstance(scope, dict) else None
        if isinstance(found, Principal):
            return found
        if self.http:  # the middleware lets no request through without one; never guess
            raise ToolError("FORBIDDEN: this request carries no identity; present a bearer token")
        return self.local

    def caller(self, ctx: Context, named: str | None = None) -> str:
        """The calling agent's name. An `agent` argument may only restate it, except for the
        operator, who may act for any agent (the CLI's --server with the lab token)."""
        me = self.principal(ctx)
        if named is None or named == me.name:
            return me.name
        if me.role is Role.operator:
            return named
        how = "your token's agent" if self.http else f"this server's identity ({self.source})"
        raise ToolError(
            f"FORBIDDEN: you are {me.name} ({how}); agent={named!r} names another agent. "
            "Leave agent out: who you are comes from your connection"
        )

    def renew(self, agent: str) -> None:
        """A holder's own write calls renew its leases (agents forget heartbeats); reads never."""
        self.call(lambda: queue.renew_holder(self.store, agent, now(), self.settings.lease_seconds))

    def server_agent(self) -> str:
        """This server as the holder of the jobs it starts, registered with its host's tools."""
        if self._server_agent is None:
            from swarm.queue import agents
            from tools.capabilities import detect

            name = f"mcp-server@{os.uname().nodename}"
            self.call(lambda: agents.register(self.store, name, detect(), now()))
            self._server_agent = name
        return self._server_agent

    def start_job(self, new: NewTask, tool: str, by: str) -> JobStarted:
        """Queue the action as a task, claim it as this server and run it as a detached job
        (swarm/queue/jobs.py, as `swarm work` does): the job outlives this server, and if the server
        goes first the next claim of the task adopts the job's result.

        Refuses with TOOL_MISSING, queueing nothing, when an executable it needs is not here.
        """
        for exe in new.requires.tools:
            if shutil.which(exe) is None:
                where, host, kind = WHERE.get(exe, (tool, f"a host with {exe}", new.kind))
                raise ToolError(
                    f"TOOL_MISSING: {exe} is not on this host's PATH; run {where} on {host}, "
                    f'or queue it with add_task(kind="{kind}")'
                )
        repo, agent = self.require_repo(), self.server_agent()
        task = self.call(lambda: queue.add_task(self.store, new, now(), actor=by))
        claim = self.call(
            lambda: queue.claim(
                self.store, agent, now(), self.settings.lease_seconds, task_id=task.id
            )
        )
        cfg = worker.WorkerConfig(
            agent=agent,
            kinds=(new.kind,),
            repo=repo,
            lab_dir=self.settings.lab_dir,
            db=self.settings.db,
            lease_seconds=self.settings.lease_seconds,
        )

        def run() -> None:
            try:
                worker.run_task(self.store, cfg, claim, self.stop, log)
            except SwarmError as exc:  # the lease was ended meanwhile: the job log keeps the rest
                log(f"job {task.id}: {exc.code()}: {exc}")

        thread = threading.Thread(target=run, name=f"job-{task.id}", daemon=True)
        self.jobs.append(thread)
        thread.start()
        return JobStarted(job=task.id, started_by=agent)

    def close(self, grace: float = 10.0) -> None:
        """Stop watching jobs: each is released with a note and keeps running; the next claim
        of its task adopts it (so nobody waits for the lease to expire)."""
        self.stop.set()
        deadline = time.monotonic() + grace
        for thread in self.jobs:
            thread.join(max(0.0, deadline - time.monotonic()))


def log(line: str) -> None:
    print(f"swarm serve: {line}", file=sys.stderr, flush=True)


def now() -> datetime:
    return datetime.now(UTC)
