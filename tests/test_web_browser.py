"""The web page in a real browser: Debian's chromium driven by Playwright (never a downloaded
browser), against a real `swarm serve --http` over the seed lab. Screenshots of the board and
the conflicts page are saved to $SWARM_TEST_ARTIFACTS (else the test's temp folder)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from swarm.db.store import open_store
from swarm.queue import auth
from tests import weblab

CHROMIUM = os.environ.get("SWARM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[weblab.WebLab, str, str]]:
    path = tmp_path_factory.mktemp("browser")
    lab = weblab.build(path, str(path / "lab.db"))
    with weblab.serve(lab) as (base, token):
        yield lab, base, token


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        # --no-sandbox: CI runs as root in a container, where chromium's sandbox cannot start
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("SWARM_TEST_ARTIFACTS")
    out = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def log_in(page: Any, base: str, token: str, path: str = "/") -> None:
    page.goto(base + path)
    page.get_by_label("Your token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(base + path) + "$"))


def test_a_page_with_no_token_redirects_to_the_login_form(page: Any, site: Any) -> None:
    _, base, _ = site
    page.goto(base + "/conflicts")
    assert "/login?next=/conflicts" in page.url
    assert page.get_by_label("Your token").is_visible()


def test_a_person_logs_in_and_sees_the_board_of_the_seed_lab(
    page: Any, site: Any, artifacts: Path
) -> None:
    lab, base, token = site
    log_in(page, base, token)
    line = page.locator("#deployment-line").inner_text()
    assert re.search(r"\d+ benchmarked \| \d+ working \| \d+ pending \| \d+ failed", line)
    tenants = page.get_by_role("link", name=lab.claimed)
    assert tenants.first.is_visible()  # a claimed deployment, as its GPU's tenant
    assert page.get_by_role("cell", name="spark-1").is_visible()
    assert "token" not in page.url and page.context.cookies()[0]["httpOnly"]
    page.screenshot(path=str(artifacts / "board.png"), full_page=True)


def test_a_person_resolves_a_conflict_with_a_reason_and_sees_who_and_why(
    page: Any, site: Any, artifacts: Path
) -> None:
    _, base, token = site
    log_in(page, base, token, "/conflicts")
    sides = page.locator("article.conflict").filter(has=page.locator(".side + .side")).first
    sides.screenshot(path=str(artifacts / "conflicts.png"))  # sides in columns
    conflict = page.locator("article.conflict").first
    cid = conflict.get_attribute("id")
    conflict.get_by_label("Reject every side").check()
    conflict.get_by_label("Reason").fill("both sides quote a secondary blog, rerun it")
    conflict.get_by_role("button", name="Record decision").click()
    page.wait_for_url(re.compile(r"/conflicts\?show=all&recorded=fd_"))
    decided = page.locator(f"article#{cid}")
    text = decided.inner_text()
    assert "both sides quote a secondary blog, rerun it" in text and "operator" in text
    assert "· decided" in text or "decided" in decided.locator("h2").inner_text()


def test_a_person_undoes_a_decision_and_the_conflict_is_open_again(page: Any, site: Any) -> None:
    _, base, token = site
    log_in(page, base, token, "/conflicts")
    conflict = page.locator("article.conflict").first
    cid = conflict.get_attribute("id")
    conflict.get_by_label("Defer (leave it disputed)").check()
    conflict.get_by_label("Reason").fill("asked the spark owner to rerun")
    conflict.get_by_role("button", name="Record decision").click()
    page.wait_for_url(re.compile(r"recorded=fd_"))
    decided = page.locator(f"article#{cid}")
    decided.get_by_label("Why undo").fill("the rerun is not coming; decide it now")
    decided.get_by_role("button", name="Undo this decision").click()
    page.wait_for_url(re.compile(r"undone=fd_"))
    text = page.locator(f"article#{cid}").inner_text()
    assert "undone by fd_" in text and "the rerun is not coming; decide it now" in text
    page.goto(base + "/conflicts")
    assert page.locator(f"article#{cid}").count() == 1  # open again


def test_a_reason_is_required_before_the_form_is_sent(page: Any, site: Any) -> None:
    _, base, token = site
    log_in(page, base, token, "/conflicts")
    conflict = page.locator("article.conflict").first
    conflict.get_by_label("Defer (leave it disputed)").check()
    conflict.get_by_role("button", name="Record decision").click()
    assert page.url.endswith("/conflicts")  # the browser kept it: the reason is required
    assert conflict.get_by_label("Reason").evaluate("el => el.validity.valueMissing")


def test_searching_smem_follows_a_hit_to_its_task(page: Any, site: Any) -> None:
    lab, base, token = site
    log_in(page, base, token)
    page.keyboard.press("/")  # the keyboard's way to the search box
    page.keyboard.type("SMEM")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=SMEM"))
    assert page.locator("mark", has_text="SMEM").first.is_visible()
    page.locator(f'a[href="/tasks/{lab.failed}"]').first.click()
    page.wait_for_url(re.compile(f"/tasks/{lab.failed}"))
    assert "triton SMEM overflow" in page.locator("pre.log").inner_text()


def test_the_board_fits_a_phone(browser: Any, site: Any, artifacts: Path) -> None:
    _, base, token = site
    context = browser.new_context(viewport={"width": 390, "height": 844})
    phone = context.new_page()
    log_in(phone, base, token)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # wide tables scroll inside their box, not the page
    phone.screenshot(path=str(artifacts / "board-phone.png"))
    context.close()


def test_an_agent_token_cannot_resolve_a_conflict(page: Any, site: Any) -> None:
    lab, base, _ = site
    store = open_store(lab.db)
    token = auth.issue_token(store, "pro-9", datetime.now(UTC), auth.Role.agent).token
    store.close()
    log_in(page, base, token, "/conflicts")
    conflict = page.locator("article.conflict").first
    assert "Only people decide conflicts" in conflict.inner_text()
    assert conflict.get_by_role("button", name="Record decision").count() == 0
    cid = conflict.get_attribute("id")
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    forged = page.request.post(  # what a script with the agent's cookie could send
        f"{base}/conflicts/{cid}/decide",
        form={"csrf": csrf, "action": "reject", "reason": "an agent deciding for itself"},
    )
    assert forged.status == 403


def test_a_person_splits_a_conflict_by_an_offered_attribute_and_the_split_is_recorded(
    page: Any, site: Any
) -> None:
    _, base, token = site
    log_in(page, base, token, "/conflicts")
    conflict = page.locator("article.conflict").filter(has=page.locator("select[name=split_by]"))
    conflict = conflict.first
    cid = conflict.get_attribute("id")
    offered = conflict.locator("select[name=split_by] option").all_inner_texts()
    assert offered  # the seed lab has a conflict whose sides all record an attribute
    conflict.get_by_label("Split by", exact=True).check()
    conflict.get_by_label("Attribute to split by").select_option(offered[-1])
    conflict.get_by_label("Reason").fill(f"the sides differ in {offered[-1]}")
    conflict.get_by_role("button", name="Record decision").click()
    page.wait_for_url(re.compile(r"/conflicts\?show=all&recorded=fd_"))  # the check accepted it
    assert f"the sides differ in {offered[-1]}" in page.locator("main").inner_text(), cid
