"""Who is looking at the page: a token from one login form post, kept in an HttpOnly cookie.

The token is never in a URL. A request's cookie (or an `Authorization: Bearer` header, for
scripts) is resolved to a user on every request, so a revoked token stops working at once.
Form posts carry a CSRF token derived from the session (HMAC under a key of this process), and
their Origin, when sent, must be this server: a page elsewhere cannot post a decision for you.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

from starlette.requests import Request

from swarm.queue.auth import Principal

COOKIE = "swarm_session"
LOGIN_COOKIE = "swarm_login"  # the login form's own CSRF value (there is no session yet)
# The page's user is the principal its token stands for (swarm.queue.auth): an agent may look, a
# person (or the operator) may also decide.
Resolver = Callable[[str], Principal | None]


class Sessions:
    """Resolves requests to users and signs their forms."""

    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve
        self._key = secrets.token_bytes(32)

    def token(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return request.cookies.get(COOKIE) or None

    def user(self, request: Request) -> Principal | None:
        token = self.token(request)
        return self.resolve(token) if token else None

    def csrf(self, request: Request) -> str:
        """The value this session's forms must post back."""
        basis = self.token(request) or request.cookies.get(LOGIN_COOKIE, "")
        return hmac.new(self._key, basis.encode(), hashlib.sha256).hexdigest()

    def login_csrf(self, request: Request, login_value: str) -> str:
        """The login form's value, before the browser holds the LOGIN_COOKIE it is sent with."""
        basis = self.token(request) or login_value
        return hmac.new(self._key, basis.encode(), hashlib.sha256).hexdigest()

    def form_ok(self, request: Request, posted: str | None) -> bool:
        """The post carries this session's CSRF value and, if the browser says, our origin."""
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return False
        return posted is not None and hmac.compare_digest(posted, self.csrf(request))
