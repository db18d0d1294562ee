"""The web page over real HTTP on loopback (a `swarm serve --http` process), on both backends:
login and sessions, CSRF, the board, conflicts decided through the triage library, facts,
findings, task pages with the sweep plot, and search."""

from __future__ import annotations

import html
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.cookiejar import CookieJar
from typing import Any

import pytest

from swarm.db.store import open_store
from swarm.lab.triage import findings_by_id
from swarm.queue import auth
from tests import weblab
from tests.conftest import BACKENDS, postgres_lab, swarm_json


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the test reads the 303 itself


class Client:
    """What a browser sends (cookies kept, redirects not followed), with answers to check."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect
        )

    def request(  # bodies as latin-1: any bytes (a PNG too) read back; pages are checked in ASCII
        self, path: str, form: dict[str, str] | None = None, **headers: str
    ) -> tuple[int, dict[str, str], str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read().decode("latin-1")
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read().decode("latin-1")

    def csrf(self, path: str) -> str:
        status, _, body = self.request(path)
        assert status == 200, body
        match = re.search(r'name="csrf" value="([0-9a-f]+)"', body)
        assert match, body
        return match.group(1)

    def login(self, token: str) -> None:
        csrf = self.csrf("/login")
        status, headers, _ = self.request("/login", {"token": token, "csrf": csrf, "next": "/"})
        assert status == 303 and headers["location"] == "/"


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[weblab.WebLab, str, str]]:
    """One served seed lab per backend for this module's tests: (lab, base URL, token)."""
    path = tmp_path_factory.mktemp(f"web-{request.param}")
    dbs = iter([str(path / "lab.db")]) if request.param == "sqlite" else postgres_lab()
    db = next(dbs)
    lab = weblab.build(path, db)
    with weblab.serve(lab) as (base, token):
        yield lab, base, token
    next(dbs, None)  # drop the PostgreSQL schema


@pytest.fixture
def client(site: tuple[weblab.WebLab, str, str]) -> Client:
    _, base, token = site
    c = Client(base)
    c.login(token)
    return c


def test_a_page_without_a_token_redirects_to_the_login_form(site: Any) -> None:
    anonymous = Client(site[1])
    status, headers, _ = anonymous.request("/conflicts?show=all")
    assert status == 303 and headers["location"] == "/login?next=/conflicts%3Fshow%3Dall"
    status, _, body = anonymous.request("/login?next=/conflicts")
    assert status == 200 and 'name="token"' in body and 'type="password"' in body
    assert anonymous.request("/conflicts/c_x/decide", {"reason": "x"})[0] in (303, 401)


def test_login_puts_the_token_in_an_httponly_cookie_and_never_in_a_url(site: Any) -> None:
    _, base, token = site
    browser = Client(base)
    csrf = browser.csrf("/login?next=/facts")
    status, headers, body = browser.request("/login", {"token": "wrong", "csrf": csrf})
    assert status == 401 and "not known here" in body
    status, headers, _ = browser.request("/login", {"token": token, "csrf": csrf, "next": "/facts"})
    assert status == 303 and headers["location"] == "/facts" and token not in headers["location"]
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert browser.request("/facts")[0] == 200
    elsewhere = Client(base)
    elsewhere.csrf("/login")
    assert elsewhere.request("/login", {"token": token, "csrf": "0" * 64})[0] == 403
    fresh = Client(base)
    form = {"token": token, "csrf": fresh.csrf("/login"), "next": "//evil.test/"}
    assert fresh.request("/login", form)[1]["location"] == "/"  # only paths on this server


def test_the_board_shows_gpus_with_tenants_agents_leases_and_the_deployment_line(
    client: Client, site: Any
) -> None:
    lab = site[0]
    status, headers, body = client.request("/")
    assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
    assert re.search(r"\d+ benchmarked \| \d+ working \| \d+ pending \| \d+ failed", body)
    fragment = client.request("/board")[2]
    assert "<html" not in fragment and "pro6000" in fragment and "spark-1" in fragment
    assert f'href="/tasks/{lab.claimed}"' in fragment  # the claimed deployment, as a tenant
    assert "pro-1" in fragment and "RTX Pro 6000" in fragment and "GB10" in fragment


def test_a_decision_needs_the_form_token_a_reason_and_goes_through_triage(
    client: Client, site: Any
) -> None:
    lab = site[0]
    page = client.request("/conflicts")[2]
    conflict = re.search(r'<article class="conflict" id="(c_[0-9a-f]+)"', page)
    assert conflict, page
    cid = conflict.group(1)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"csrf": csrf, "action": "defer", "reason": "waiting on a rerun at TP 2"}
    forged = client.request(f"/conflicts/{cid}/decide", {**form, "csrf": "f" * 64})
    assert forged[0] == 403
    other_site = client.request(f"/conflicts/{cid}/decide", form, Origin="http://evil.test")
    assert other_site[0] == 403
    short = client.request(f"/conflicts/{cid}/decide", {**form, "reason": "ok"})
    assert short[0] == 400 and "say why" in html.unescape(short[2])
    bad_side = client.request(f"/conflicts/{cid}/decide", {**form, "action": "accept", "side": "9"})
    assert bad_side[0] == 400
    status, headers, _ = client.request(f"/conflicts/{cid}/decide", form)
    assert status == 303 and headers["location"].startswith("/conflicts?show=all&recorded=fd_")
    decided = client.request("/conflicts?show=deferred")[2]
    assert cid in decided and "waiting on a rerun at TP 2" in decided and "operator" in decided
    env = {**os.environ, "SWARM_DB": lab.db}
    listed = swarm_json(lab.path, "triage", "list", "--all", env=env)["conflicts"]
    assert next(c for c in listed if c["id"] == cid)["state"] == "deferred"
    by_id = findings_by_id(open_store(lab.db))
    (decision,) = [f for f in by_id.values() if f.decision and f.decision.conflict == cid]
    assert decision.decision.by == "operator"  # type: ignore[union-attr]


def test_split_options_are_only_attributes_every_finding_on_both_sides_records(
    client: Client, site: Any
) -> None:
    lab = site[0]
    page = html.unescape(client.request("/conflicts?show=all")[2])
    env = {**os.environ, "SWARM_DB": lab.db}
    listed = swarm_json(lab.path, "triage", "list", "--all", env=env)["conflicts"]
    by_id = findings_by_id(open_store(lab.db))
    offered_any = refused_any = False
    for c in listed:
        select = re.search(rf'<select id="split-{c["id"]}" name="split_by">(.*?)</select>', page)
        offered = re.findall(r"<option>([^<]*)</option>", select.group(1)) if select else []
        sides = [[by_id[fid] for fid in side["findings"]] for side in c["sides"]]
        everywhere = set.intersection(
            *({k for k, v in f.attributes.items() if v is not None} for side in sides for f in side)
        )
        assert set(offered) == (everywhere if len(sides) > 1 else set()), c["id"]
        offered_any |= bool(offered)
        somewhere = {k for side in sides for f in side for k in (*f.attributes, *f.scope)}
        for attr in sorted(somewhere - everywhere)[:1]:  # on one side only: the page refuses it
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
            form = {"csrf": csrf, "action": "split", "split_by": attr, "reason": "try it"}
            status, _, body = client.request(f"/conflicts/{c['id']}/decide", form)
            assert status == 400 and "split by one of" in html.unescape(body), re.findall(
                r"role=.alert.>[^<]*", body
            )
            refused_any = True
    assert offered_any and refused_any  # the seed lab has both kinds


def test_facts_filter_by_gpu_platform_model_and_status_and_link_to_findings(
    client: Client,
) -> None:
    status, _, body = client.request("/facts?gpu=DGX+Spark&platform=vllm&status=verified")
    assert status == 200
    rows = re.findall(r"<tr id=\"[^\"]+\">(.*?)</tr>", body, re.S)
    assert rows and all("DGX Spark" in r and "platform=vllm" in r and "verified" in r for r in rows)
    finding = re.search(r'href="/findings/(fd_[0-9a-f]+)"', rows[0]).group(1)  # type: ignore[union-attr]
    page = client.request(f"/findings/{finding}")[2]
    assert "Evidence" in page and "seed_README.txt" in page
    model = client.request("/facts?model=qwen3-next")[2]
    assert "Qwen3-Next" in model and "gpt-oss" not in model
    assert client.request("/findings/fd_nope")[0] == 404


def test_a_task_page_shows_spec_history_results_log_tail_and_the_sweep_plot(
    client: Client, site: Any
) -> None:
    lab = site[0]
    page = html.unescape(client.request(f"/tasks/{lab.failed}")[2])
    assert "MoE kernel probe" in page and "triton SMEM overflow: 132 KB" in page
    assert "reported failed" in page and "spark-1" in page
    bench = client.request(f"/tasks/{lab.bench}")[2]
    plot = re.search(r'src="(/tasks/[^"]+\.png)"', bench)
    assert plot, bench
    status, headers, png = client.request(plot.group(1))
    assert status == 200 and headers["content-type"] == "image/png"
    assert png.startswith("\x89PNG")
    assert client.request(f"/tasks/{lab.failed}/plot/res-nope.png")[0] == 404


def test_search_finds_smem_and_links_each_hit_to_what_it_came_from(
    client: Client, site: Any
) -> None:
    lab = site[0]
    page = client.request("/search?q=SMEM+overflow")[2]
    assert "<mark>SMEM</mark>" in page
    assert f'href="/tasks/{lab.failed}"' in page  # the failed task and its log
    assert 'href="/findings/fd_' in page and "Failed deployments it names" in page
    assert "search for at least one word" in client.request("/search?q=%3F%3F")[2]


def test_static_files_are_served_from_the_package_with_no_cdn(client: Client) -> None:
    status, headers, script = client.request("/static/app.js")
    assert status == 200 and "javascript" in headers["content-type"] and "refreshBoard" in script
    page = client.request("/")[2]
    assert "http://" not in page.replace(client.base, "") and "https://" not in page


def test_what_agents_wrote_is_shown_as_text_never_as_markup(client: Client, site: Any) -> None:
    lab = site[0]
    env = {**os.environ, "SWARM_DB": lab.db}
    title = '<script>alert("x")</script> SMEM probe'
    added = swarm_json(lab.path, "add", "other", title, env=env)
    for path in (f"/tasks/{added['id']}", "/search?q=SMEM+probe"):
        body = client.request(path)[2]
        assert "&lt;script&gt;" in body and '<script>alert("x")' not in body, path


def _issue(lab: weblab.WebLab, name: str, role: str) -> str:
    """A token of the lab's identity registry (#15) for name with role."""
    store = open_store(lab.db)
    try:
        return str(auth.issue_token(store, name, datetime.now(UTC), auth.Role(role)).token)
    finally:
        store.close()


def _first_open_conflict(client: Client) -> tuple[str, str]:
    page = client.request("/conflicts")[2]
    cid = re.search(r'<article class="conflict" id="(c_[0-9a-f]+)"', page)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert cid and csrf, page
    return cid.group(1), csrf.group(1)


def test_an_agent_token_sees_the_pages_but_cannot_decide(site: Any) -> None:
    lab, base, _ = site
    agent = Client(base)
    agent.login(_issue(lab, "spark-7", "agent"))
    page = agent.request("/conflicts")[2]
    assert "Only people decide conflicts" in page and "Record decision" not in page
    cid, csrf = _first_open_conflict(agent)
    form = {"csrf": csrf, "action": "defer", "reason": "an agent deciding for itself"}
    status, _, body = agent.request(f"/conflicts/{cid}/decide", form)
    assert status == 403 and "spark-7 is an agent" in body
    decided = [f for f in findings_by_id(open_store(lab.db)).values() if f.kind == "decision"]
    assert not [f for f in decided if f.agent == "spark-7"]


def test_a_person_token_decides_under_the_persons_name_until_revoked(site: Any) -> None:
    lab, base, _ = site
    person = Client(base)
    person.login(_issue(lab, "dana", "person"))
    cid, csrf = _first_open_conflict(person)
    form = {"csrf": csrf, "action": "defer", "reason": "dana waits for the TP 2 rerun"}
    assert person.request(f"/conflicts/{cid}/decide", form)[0] == 303
    by_id = findings_by_id(open_store(lab.db))
    (made,) = [f for f in by_id.values() if f.decision and "dana waits" in f.decision.reason]
    assert made.decision is not None and made.decision.by == "dana"
    store = open_store(lab.db)
    auth.revoke_token(store, "dana")
    store.close()
    status, headers, _ = person.request("/conflicts")
    assert status == 303 and headers["location"].startswith("/login")  # revoked: logged out
