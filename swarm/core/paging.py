"""Cursors for paged lists: opaque to the caller, bound to the list's filters, and short-lived,
so a malformed, foreign or stale cursor is an error instead of a silently empty page."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

from swarm.core.errors import InvalidInput

TTL_SECONDS = 3600
VERSION = 1


def _filters(states: Sequence[str], kinds: Sequence[str]) -> str:
    key = json.dumps([sorted(states), sorted(kinds)], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def cursor(last_id: str, states: Sequence[str], kinds: Sequence[str], now: datetime) -> str:
    """The cursor of the page after the task last_id, for this list's filters."""
    body = json.dumps(
        [VERSION, last_id, _filters(states, kinds), int(now.timestamp())], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def after(text: str, states: Sequence[str], kinds: Sequence[str], now: datetime) -> str:
    """The last task id a cursor stands for; raises InvalidInput when it is malformed, made for
    other filters, or older than TTL_SECONDS."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        version, last_id, filters, issued = json.loads(raw)
        if version != VERSION or not isinstance(last_id, str) or not isinstance(issued, int):
            raise ValueError(version)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"cursor must be a next_cursor list_tasks returned (got {text[:40]!r}); "
            "call list_tasks without cursor to start again"
        ) from exc
    if filters != _filters(states, kinds):
        raise InvalidInput(
            "cursor belongs to a list with other state/kind filters: pass the same filters, "
            "or call list_tasks without cursor"
        )
    if now.timestamp() - issued > TTL_SECONDS:
        raise InvalidInput(
            f"cursor expired (older than {TTL_SECONDS // 60} minutes): call list_tasks "
            "without cursor to start again"
        )
    return last_id
