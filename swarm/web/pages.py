"""The pages: each handler resolves the user, calls one or two library functions and renders a
template. Decisions go through `swarm.lab.triage`, the same calls `swarm triage resolve` makes."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import quote, urlencode

from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from swarm.core.errors import InvalidInput, NotFound, SwarmError
from swarm.db import search
from swarm.db.store import Store
from swarm.lab import triage
from swarm.present import board
from swarm.queue.auth import Principal
from swarm.web import views
from swarm.web.session import COOKIE, LOGIN_COOKIE, Sessions

HERE = Path(__file__).parent
SESSION_DAYS = 7
HEADERS = {
    # Everything the page needs is served from here: no CDN, nothing inline to inject into.
    "content-security-policy": "default-src 'self'; img-src 'self'; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
Handler = Callable[[Request, Principal], Response]


def _now() -> datetime:
    return datetime.now(UTC)


def _safe_next(target: str | None) -> str:
    """Only a path on this server (never //elsewhere or a scheme) after logging in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _age(seconds: float) -> str:
    """12 s, 5 min, 3.2 h, 2.0 d; negative (overdue) as -12 s."""
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s < 90:
        return f"{sign}{s:.0f} s"
    if s < 5400:
        return f"{sign}{s / 60:.0f} min"
    return f"{sign}{s / 3600:.1f} h" if s < 172800 else f"{sign}{s / 86400:.1f} d"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def _marked(snippet: str) -> Markup:
    """A search snippet with its matched words in <mark>, everything else escaped."""
    text = str(escape(snippet))
    return Markup(text.replace(search.MARK[0], "<mark>").replace(search.MARK[1], "</mark>"))


def _page(params: Any, page: int) -> str:
    return urlencode([*((k, v) for k, v in params.multi_items() if k != "page"), ("page", page)])


def _page_number(request: Request, items: int, per_page: int) -> tuple[int, int]:
    """The ?page= asked for (0-based, kept within range) and how many pages there are."""
    pages = max(1, (items + per_page - 1) // per_page)
    asked = request.query_params.get("page", "0")
    return (min(int(asked), pages - 1) if asked.isdigit() else 0), pages


class Web:
    """The web app's state: the store, the lab's repo and folder, sessions, templates."""

    def __init__(self, store: Store, repo: Path | None, lab_dir: Path, sessions: Sessions) -> None:
        self.store, self.repo, self.lab_dir, self.sessions = store, repo, lab_dir, sessions
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters.update(age=_age, value=_value, marked=_marked, pagequery=_page)
        # The triage cache the CLI keeps (`swarm triage`): a decision made here checks the
        # conflict against the last pass instead of running a whole one.
        self.cache = lab_dir / "facts-cache"
        self.reconciled = views.Reconciled(store, repo, self.cache) if repo is not None else None

    # ------------------------------------------------------------ plumbing

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        user = request.scope.get("swarm.user") or self.sessions.user(request)
        context = {"csrf": self.sessions.csrf(request), "user": user, **context}
        response = self.templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(HEADERS)
        return response

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Run handler for a logged-in user (on a thread: the store blocks); else the login
        form for a browser, 401 for a script."""

        async def endpoint(request: Request) -> Response:
            user = await run_in_threadpool(self.sessions.user, request)
            request.scope["swarm.user"] = user  # resolved once per request
            if user is None:
                if "text/html" in request.headers.get("accept", "") or request.method == "GET":
                    target = quote(
                        request.url.path + ("?" + request.url.query if request.url.query else "")
                    )
                    return RedirectResponse(f"/login?next={target}", status_code=303)
                return Response("log in first", status_code=401, headers=HEADERS)
            if request.method == "POST":
                form = await request.form()
                request.scope["swarm.form"] = {k: v for k, v in form.items() if isinstance(v, str)}
                posted = form.get("csrf")
                if not self.sessions.form_ok(request, posted if isinstance(posted, str) else None):
                    return self.render(
                        request,
                        "error.html",
                        403,
                        message="This form has "
                        "expired or came from another site: reload the page and try again.",
                    )
            try:
                return await run_in_threadpool(handler, request, user)
            except NotFound as exc:
                return self.render(request, "error.html", 404, message=str(exc))
            except SwarmError as exc:
                return self.render(request, "error.html", 400, message=str(exc))

        return endpoint

    def decisions(self) -> list[Any]:
        return self.reconciled.decisions if self.reconciled is not None else []

    def facts(self) -> Any:
        if self.reconciled is None:
            raise InvalidInput("the server was not started inside the lab's git repository")
        return self.reconciled.outcome()

    # ------------------------------------------------------------ login

    async def login_form(self, request: Request) -> Response:
        value = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)
        response = self.render(
            request,
            "login.html",
            next=_safe_next(request.query_params.get("next")),
            csrf=self.sessions.login_csrf(request, value),
        )
        response.set_cookie(LOGIN_COOKIE, value, httponly=True, samesite="strict")
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form()
        token, posted, target = (str(form.get(k) or "") for k in ("token", "csrf", "next"))
        if not self.sessions.form_ok(request, posted):
            return self.render(
                request,
                "login.html",
                403,
                next=_safe_next(target),
                error="The form expired; try again.",
            )
        user = await run_in_threadpool(self.sessions.resolve, token.strip())
        if user is None:
            return self.render(
                request,
                "login.html",
                401,
                next=_safe_next(target),
                error="That token is not known here (or was revoked).",
            )
        response = RedirectResponse(_safe_next(target), status_code=303)
        response.set_cookie(
            COOKIE,
            token.strip(),
            max_age=SESSION_DAYS * 86400,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(LOGIN_COOKIE)
        return response

    def logout(self, request: Request, user: Principal) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # ------------------------------------------------------------ board

    def _board(self) -> dict[str, Any]:
        now = _now()
        return {"board": board.board(self.store, now), "hosts": board.hosts(self.store, now)}

    def board_page(self, request: Request, user: Principal) -> Response:
        return self.render(request, "board.html", **self._board())

    def board_fragment(self, request: Request, user: Principal) -> Response:
        return self.render(request, "_board.html", **self._board())

    # ------------------------------------------------------------ conflicts

    def conflicts(
        self, request: Request, user: Principal, status: int = 200, **extra: Any
    ) -> Response:
        show = request.query_params.get("show", "open")
        show = show if show in ("open", "decided", "deferred", "all") else "open"
        outcome = self.facts()
        chosen = views.choose_conflicts(outcome, show)
        page, pages = _page_number(request, len(chosen), views.CONFLICTS_PAGE)
        shown = chosen[page * views.CONFLICTS_PAGE : (page + 1) * views.CONFLICTS_PAGE]
        items = views.conflict_views(self.store, outcome, shown, self.decisions())
        return self.render(
            request,
            "conflicts.html",
            status,
            conflicts=items,
            show=show,
            total=len(chosen),
            page=page,
            pages=pages,
            **extra,
        )

    def decide(self, request: Request, user: Principal) -> Response:
        conflict_id = request.path_params["conflict"]
        if not user.is_person:
            return self.render(
                request,
                "error.html",
                403,
                message=f"{user.name} is an agent: "
                "decisions on conflicts are people's (log in with a person's token).",
            )
        form = self._form(request)
        try:
            action, accept, split_by = self._action(conflict_id, form)
            finding = triage.decide(
                self.store,
                self._repo(),
                conflict_id,
                action,
                form.get("reason", ""),
                user.name,
                _now(),
                accept=accept,
                split_by=split_by,
                cache=self.cache,
            )
        except InvalidInput as exc:
            return self.conflicts(request, user, 400, error=str(exc), failed=conflict_id)
        self.forget()
        return RedirectResponse(f"/conflicts?show=all&recorded={finding.id}#{conflict_id}", 303)

    def undo(self, request: Request, user: Principal) -> Response:
        conflict_id = request.path_params["conflict"]
        if not user.is_person:
            return self.render(request, "error.html", 403, message=f"{user.name} is an agent: "
                               "only people undo decisions.")  # fmt: skip
        form = self._form(request)
        try:  # the call `swarm triage undo` makes
            finding = triage.undo(self.store, form.get("decision", ""), form.get("reason", ""),
                           user.name, _now())  # fmt: skip
        except InvalidInput as exc:
            return self.conflicts(request, user, 400, error=str(exc), failed=conflict_id)
        self.forget()
        return RedirectResponse(f"/conflicts?show=all&undone={finding.id}#{conflict_id}", 303)

    def _form(self, request: Request) -> dict[str, str]:
        return cast(dict[str, str], request.scope.get("swarm.form") or {})

    def _repo(self) -> Path:
        if self.repo is None:
            raise InvalidInput("the server was not started inside the lab's git repository")
        return self.repo

    def _action(
        self, conflict_id: str, form: dict[str, str]
    ) -> tuple[triage.Action, tuple[str, ...], str | None]:
        """The form's action, with the side it accepts or the attribute it splits by, checked
        against the conflict as it stands; raises InvalidInput or NotFound."""
        action = form.get("action", "")
        if action not in ("accept", "reject", "split", "defer"):
            raise InvalidInput("choose an action: accept a side, split, reject or defer")
        outcome = self.facts()
        found = [c for c in outcome.facts.conflicts if c.id == conflict_id]
        if not found:
            raise NotFound(f"no conflict {conflict_id!r}")
        (view,) = views.conflict_views(self.store, outcome, found, self.decisions())
        if action == "accept":
            side = form.get("side", "")
            if not side.isdigit() or int(side) >= len(view.sides):
                raise InvalidInput("accept: choose which side")
            return "accept", view.sides[int(side)].side.findings, None
        if action == "split":
            split_by = form.get("split_by", "")
            if split_by not in view.split_options:
                raise InvalidInput(f"split by one of: {', '.join(view.split_options) or '(none)'}")
            return "split", (), split_by
        return cast(Literal["reject", "defer"], action), (), None

    def forget(self) -> None:
        if self.reconciled is not None:
            self.reconciled.forget()

    # ------------------------------------------------------------ facts, findings

    def facts_page(self, request: Request, user: Principal) -> Response:
        items = self.facts().facts.facts
        wanted = {n: request.query_params.get(n, "").strip() for n in views.FILTERS}
        chosen = views.filter_facts(items, wanted)
        page, pages = _page_number(request, len(chosen), views.FACTS_PAGE)
        shown = chosen[page * views.FACTS_PAGE : (page + 1) * views.FACTS_PAGE]
        return self.render(
            request,
            "facts.html",
            facts=shown,
            total=len(chosen),
            page=page,
            pages=pages,
            wanted=wanted,
            choices=views.filter_choices(items),
        )

    def finding_page(self, request: Request, user: Principal) -> Response:
        finding_id = request.path_params["finding"]
        found = views.findings_by_id(self.store, [finding_id])
        if finding_id not in found:
            raise NotFound(f"no finding {finding_id!r}")
        outcome = self.facts()
        view = views._finding_view(found[finding_id], outcome, views.agent_hosts(self.store))
        cited = [f for f in outcome.facts.facts if finding_id in f.findings]
        disputes = [
            c for c in outcome.facts.conflicts if any(finding_id in s.findings for s in c.sides)
        ]
        return self.render(
            request,
            "finding.html",
            finding=found[finding_id],
            view=view,
            facts=cited,
            conflicts=disputes,
        )

    # ------------------------------------------------------------ tasks, search

    def task_page(self, request: Request, user: Principal) -> Response:
        page = views.task_page(self.store, request.path_params["task"], self.lab_dir)
        return self.render(request, "task.html", page=page)

    def plot(self, request: Request, user: Principal) -> Response:
        from swarm.queue import queue
        from tools.bench_plot import render_png
        from tools.benchmark import BenchmarkReport

        task_id, result_id = request.path_params["task"], request.path_params["result"]
        chosen = [r for r in queue.task_results(self.store, task_id) if r.id == result_id]
        if not chosen or not views.has_sweep(chosen[0]):
            raise NotFound(f"no benchmark sweep in result {result_id!r} of {task_id!r}")
        png = render_png(BenchmarkReport.model_validate(chosen[0].payload["report"]))
        return Response(png, media_type="image/png", headers=HEADERS)

    def search_page(self, request: Request, user: Principal) -> Response:
        text = request.query_params.get("q", "").strip()
        kinds = [k for k in request.query_params.getlist("kind") if k in search.KINDS]
        found, error = None, None
        if text:
            try:
                found = search.search(self.store, text, kinds, 50)
            except InvalidInput as exc:
                error = str(exc)
        return self.render(
            request,
            "search.html",
            q=text,
            kinds=kinds,
            found=found,
            error=error,
            all_kinds=search.KINDS,
        )

    # ------------------------------------------------------------ routes

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page(self.board_page), methods=["GET"]),
            Route("/board", self.page(self.board_fragment), methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.page(self.logout), methods=["POST"]),
            Route("/conflicts", self.page(self.conflicts), methods=["GET"]),
            Route("/conflicts/{conflict}/decide", self.page(self.decide), methods=["POST"]),
            Route("/conflicts/{conflict}/undo", self.page(self.undo), methods=["POST"]),
            Route("/facts", self.page(self.facts_page), methods=["GET"]),
            Route("/findings/{finding}", self.page(self.finding_page), methods=["GET"]),
            Route("/tasks/{task}", self.page(self.task_page), methods=["GET"]),
            Route("/tasks/{task}/plot/{result}.png", self.page(self.plot), methods=["GET"]),
            Route("/search", self.page(self.search_page), methods=["GET"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
