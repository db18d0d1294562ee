"""The lab's web page, served by `swarm serve --http` at / beside the MCP endpoint (/mcp).

Plain HTML from Jinja2 templates and one small script (no build step, nothing from a CDN):
the board, conflicts side by side with their decisions, the facts table, task pages and search.
An adapter, like the CLI and the MCP server: it may import every swarm layer below them and
tools/ (never swarm.mcp or swarm.cli, which serve it).
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute

from swarm.db.store import Store
from swarm.web.pages import Web
from swarm.web.session import Resolver, Sessions

__all__ = ["Resolver", "Web", "routes"]


def routes(store: Store, repo: Path | None, lab_dir: Path, resolve: Resolver) -> list[BaseRoute]:
    """The web app's routes, to add to the server's Starlette app."""
    return Web(store, repo, lab_dir, Sessions(resolve)).routes()
