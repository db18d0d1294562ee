"""The queue through a remote `swarm serve --http`: for hosts with no access to the database.

`swarm --server URL --token T claim` (or SWARM_SERVER / SWARM_TOKEN) sends the command as an MCP
tool call over Streamable HTTP and returns the same models the library does, so the CLI renders
and exits the same way. The server's errors come back as `CODE: message`; each code maps back to
the error class it came from, so exit codes (3 nothing claimable, 4 lease lost, ...) carry over.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from swarm.core import errors
from swarm.core.errors import NothingClaimable, StoreUnavailable, SwarmError
from swarm.core.models import Agent, Capabilities, Claim, Lease, NewTask, Result, Task, TaskSummary

if TYPE_CHECKING:
    from swarm.facts.findings import NewFinding

T = TypeVar("T")
Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def raise_tool_error(text: str) -> None:
    """Raise the SwarmError a tool error's text (`… CODE: message`) stands for."""
    found = re.search(r"\b([A-Z][A-Z_]+): (.*)", text, re.DOTALL)
    raise errors.from_code(*found.groups()) if found else SwarmError(text)


def refuses_token(url: str, token: str) -> bool:
    """Whether the server answers 401 to this token (asked only after a session failed)."""
    request = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        urllib.request.urlopen(request, timeout=5).close()
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False
    return False


def _root_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class RemoteLab:
    """The queue operations the CLI needs, as tool calls to one server."""

    def __init__(self, url: str, token: str, agent: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.InvalidInput(
                f"the server must be an http(s)://HOST:PORT/mcp URL (got {url!a})"
            )
        if not re.fullmatch(r"[\x21-\x7e]+", token):  # it goes into an HTTP header as is
            raise errors.InvalidInput("the token must be printable ASCII without spaces")
        self.url = url
        self.token = token
        self.agent = agent

    def _session(self, work: Callable[[Call], Awaitable[T]]) -> T:
        """Open one MCP session, run work with a `call(tool, args)`, close it."""
        import anyio
        import httpx2  # the SDK's HTTP client
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client  # the SDK's timeouts
        from mcp.shared.exceptions import MCPError

        async def main() -> T:
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {self.token}"})
            async with http, Client(streamable_http_client(self.url, http_client=http)) as client:

                async def call(tool: str, args: dict[str, Any]) -> dict[str, Any]:
                    result = await client.call_tool(tool, args)
                    if result.is_error:
                        raise_tool_error(getattr(result.content[0], "text", "ERROR: no message"))
                    return dict(result.structured_content or {})

                return await work(call)

        try:
            return anyio.run(main)
        except SwarmError:
            raise
        except Exception as exc:  # the transport's errors arrive wrapped in task groups
            cause = _root_cause(exc)
            if isinstance(cause, SwarmError):
                raise cause from None
            if not isinstance(cause, (OSError, httpx2.HTTPError, MCPError)):
                raise  # not the connection: a bug here, shown as one
            if refuses_token(self.url, self.token):
                raise StoreUnavailable(
                    f"{self.url} refused the token: pass the one `swarm serve --http` printed "
                    "(--token or SWARM_TOKEN; it is kept in the server's lab dir as http_token)"
                ) from None
            raise StoreUnavailable(f"cannot reach the swarm server at {self.url}: {cause}") from exc

    def _one(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        async def work(call: Call) -> dict[str, Any]:
            return await call(tool, args)

        return self._session(work)

    def _with_agent(self, args: dict[str, Any]) -> dict[str, Any]:
        return {**args, "agent": self.agent} if self.agent else args

    # ------------------------------------------------------------ operations

    def register(self, caps: Capabilities) -> Agent:
        body = self._one("register_agent", self._with_agent({"capabilities": caps.model_dump()}))
        fields = {k: body[k] for k in ("id", "registered_at", "last_seen")}
        return Agent(**fields, capabilities=caps)  # the server answers with what it recorded

    def add(self, new: NewTask) -> Task:
        args = new.model_dump(mode="json", exclude={"id"}, exclude_none=True)
        if new.id:
            raise errors.InvalidInput("--id is not available through --server (ids are assigned)")

        async def work(call: Call) -> Task:
            added = await call("add_task", self._with_agent(args))
            return Task.model_validate((await call("get_task", {"task_id": added["id"]}))["task"])

        return self._session(work)

    def claim(self, lease_seconds: float | None, kinds: Sequence[str] | None) -> Claim:
        args: dict[str, Any] = self._with_agent({"kinds": list(kinds) if kinds else None})
        if lease_seconds:
            args["lease_seconds"] = lease_seconds

        async def work(call: Call) -> Claim:
            body = await call("claim_task", args)
            if not body["claimed"]:
                raise NothingClaimable(body.get("reason") or "nothing claimable")
            task = (await call("get_task", {"task_id": body["task"]["id"]}))["task"]
            return Claim(task=task, lease=body["lease"])  # claim_task sends what agents need

        return self._session(work)

    def heartbeat(self, task_id: str, epoch: int, lease_seconds: float | None) -> Lease:
        args: dict[str, Any] = self._with_agent({"task_id": task_id, "epoch": epoch})
        if lease_seconds:
            args["lease_seconds"] = lease_seconds
        return Lease.model_validate(self._one("heartbeat", args))

    def release(self, task_id: str, epoch: int, note: str | None) -> Task:
        async def work(call: Call) -> Task:
            args = self._with_agent({"task_id": task_id, "epoch": epoch, "note": note})
            await call("release_task", args)
            return Task.model_validate((await call("get_task", {"task_id": task_id}))["task"])

        return self._session(work)

    def force_release(self, task_id: str, note: str) -> Task:
        raise errors.InvalidInput(
            f"--force is the operator's, on the lab host: run `swarm release {task_id} --force "
            f"--note {note!r}` where the database is"
        )

    def report(
        self,
        task_id: str,
        epoch: int,
        status: str,
        payload: dict[str, Any],
        note: str | None,
        key: str | None,
        findings: Sequence[NewFinding] = (),
    ) -> Result:
        args = {
            "task_id": task_id,
            "epoch": epoch,
            "status": status,
            "result": payload,
            "note": note,
            "idempotency_key": key,
            "findings": [f.model_dump(mode="json") for f in findings] or None,
        }
        return Result.model_validate(self._one("report_result", self._with_agent(args)))

    def list_tasks(
        self, states: Sequence[str], kinds: Sequence[str], limit: int, after: str | None
    ) -> tuple[list[TaskSummary], str | None]:
        from swarm.core import paging

        now = datetime.now(UTC)
        args = {
            "state": list(states) or None,
            "kind": list(kinds) or None,
            "limit": limit,
            "cursor": paging.cursor(after, states, kinds, now) if after else None,
        }
        body = self._one("list_tasks", args)
        more = body.get("next_cursor")
        last = paging.after(more, states, kinds, now) if more else None  # the CLI pages by id
        return [TaskSummary.model_validate(t) for t in body["tasks"]], last

    def get_task(self, task_id: str) -> tuple[Task, list[Result]]:
        body = self._one("get_task", {"task_id": task_id})
        return Task.model_validate(body["task"]), [
            Result.model_validate(r) for r in body["results"]
        ]
