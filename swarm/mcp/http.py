"""`swarm serve --http`: the MCP server over Streamable HTTP, each request's caller derived from
its bearer token (an agent's or person's token, or the operator's lab token).

Safe to expose only deliberately: loopback by default; any other bind address needs the host
names clients use (`--allowed-host`), so the SDK's Host/Origin checks against DNS rebinding stay
on. TLS belongs to a reverse proxy in front (README: "Serving over HTTPS").
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio

from swarm.core.errors import InvalidInput
from swarm.core.models import build_all_models
from swarm.core.settings import Settings
from swarm.db.store import Store
from swarm.mcp.server import MCP_PATH, PRINCIPAL, Lab, build_server
from swarm.queue import auth
from swarm.queue.auth import Principal

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class BearerAuth:
    """ASGI middleware: every MCP request needs `Authorization: Bearer <token>` naming a live
    token, else 401; the token's principal rides in the scope for the tools to read. The web
    page's routes check their own session (a cookie, or the same bearer header)."""

    def __init__(self, app: Any, store: Store, operator_token: str) -> None:
        self.app, self.store, self.operator_token = app, store, operator_token

    def resolve(self, header: bytes | None) -> Principal | None:
        token = auth.bearer(header)
        return None if token is None else auth.principal_for(self.store, token, self.operator_token)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(MCP_PATH):
            header = dict(scope.get("headers") or ()).get(b"authorization")
            principal = await anyio.to_thread.run_sync(self.resolve, header)
            if principal is None:
                await _refuse(send)
                return
            scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)


async def _refuse(send: Any) -> None:
    body = json.dumps(
        {
            "error": "missing, unknown or revoked bearer token: present your agent token "
            "(`swarm agent token NAME`) or the operator's (the lab dir's http_token)"
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def security(host: str, allowed: tuple[str, ...]) -> Any:
    """Host/Origin checks: loopback names always, plus each --allowed-host (any port unless it
    names one). Refuses a non-loopback bind with no --allowed-host."""
    from mcp.server.transport_security import TransportSecuritySettings

    if host not in LOOPBACK and not allowed:
        raise InvalidInput(
            f"--host {host} exposes the lab beyond this machine: name the host names clients "
            "will use with --allowed-host NAME (repeatable), so Host/Origin checks stay on"
        )
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    for name in allowed:
        hosts += [name] if ":" in name.strip("[]") else [name, f"{name}:*"]
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


def web_resolver(store: Store, operator_token: str) -> Any:
    """The web page's token -> principal: the same as MCP's, so a person's token decides on the
    page and an agent's only looks."""
    return lambda token: auth.principal_for(store, token, operator_token)


def http_app(settings: Settings, host: str, allowed: tuple[str, ...] = ()) -> tuple[Any, str, bool]:
    """The ASGI app with bearer auth, the operator token and whether it was just made."""
    token, created = auth.operator_token(settings.lab_dir)
    build_all_models()  # the shared server: build models now, not racing in the first calls
    lab = Lab(settings, agent=auth.OPERATOR, http=True)
    app = build_server(lab).streamable_http_app(
        host=host, transport_security=security(host, allowed)
    )
    from swarm import web  # the page for people, at / beside /mcp in the same app

    resolve = web_resolver(lab.store, token)
    app.router.routes.extend(web.routes(lab.store, lab.repo, settings.lab_dir, resolve))
    return BearerAuth(app, lab.store, token), token, created


def serve_http(settings: Settings, host: str, port: int, allowed: tuple[str, ...] = ()) -> None:
    import uvicorn

    app, token, created = http_app(settings, host, allowed)
    path = settings.lab_dir / auth.OPERATOR_TOKEN_FILE
    if created:
        print(
            f"swarm serve: new bearer token (the operator's, kept in {path}): {token}",
            file=sys.stderr,
        )
    if host not in LOOPBACK:
        print(
            f"swarm serve: WARNING: listening on {host}, beyond this machine, as plain HTTP: put "
            "a TLS reverse proxy in front (README: Serving over HTTPS); allowed hosts: "
            + ", ".join(allowed),
            file=sys.stderr,
        )
    print(f"swarm serve: MCP over Streamable HTTP at http://{host}:{port}/mcp", file=sys.stderr)
    print(
        f"swarm serve: the lab's web page at http://{host}:{port}/ (log in with a token)",
        file=sys.stderr,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
