"""Merchandising rules in a real browser (Debian's Chromium, headless) against a real origin
process on a real Redis, with a real edge process in front: a rule made in the console is
applied in the edge's rail answers, and deleting it there takes it away. Screenshots go to
the test's tmp_path (under the pytest basetemp; never committed)."""

from __future__ import annotations

import time

import httpx
import pytest

from cache_keys import new_shopper_id
from tests.support import data
from tests.support.browser import shot, sign_in
from tests.support.data import shopper_cookie
from tests.support.timing import wait_until

pytestmark = pytest.mark.browser
PINNED = {"item": "S1-030", "reason": "pinned by merchandising rule browser-pin"}


def _first(edge, cookie: str) -> dict[str, object]:
    r = httpx.get(f"{edge.url}/p13n/v1/rail/home?k=10", headers={"cookie": cookie}, timeout=5)
    assert r.status_code == 200
    items = r.json()["items"]
    return {k: items[0][k] for k in ("item", "reason")} if items else {}


def test_a_rule_made_in_the_console_is_applied_by_the_edge(page, stack, edge, tmp_path) -> None:
    cookie = shopper_cookie(new_shopper_id(), 1, time.time())
    assert _first(edge, cookie) != PINNED
    sign_in(page, stack, data.MERCH)
    page.goto(stack.url + "/console/rules")
    assert "No rules." in page.inner_text("#rules")
    page.fill("#name", "browser-pin")
    page.check("input[name=kind][value=pin]")
    page.check("input[name=target][value=skus]")
    page.fill("#value", PINNED["item"])
    page.fill("#position", "1")
    page.fill("#routes", "home")
    page.fill("#reason", "brand deal")
    page.get_by_role("button", name="Add rule").click()
    notice = page.inner_text("#rule-notice")
    assert "sent to the edges as soft purge inv-" in notice  # what is true now, not "applied"
    assert "pin at 1" in page.inner_text("tr[data-rule=browser-pin]")
    shot(page, tmp_path, "rule-created")
    wait_until(lambda: _first(edge, cookie) == PINNED, 20, "the edge never applied the rule")
    page.click("#rule-notice a")  # the soft purge that carries the rule, followed to the edges
    page.wait_for_selector("#inv-state.done", timeout=15_000)
    assert page.inner_text("#inv-state") == "applied"
    shot(page, tmp_path, "rule-purge-applied")
    page.goto(stack.url + "/console/rules")
    page.fill("#name", "bad-boost")
    page.check("input[name=kind][value=boost]")
    page.fill("#value", "S1-001")
    page.fill("#factor", "0.5")
    page.get_by_role("button", name="Add rule").click()
    assert "factor must be above 1" in page.inner_text("#error-factor")
    shot(page, tmp_path, "rule-refused")
    page.goto(stack.url + "/console/rules")
    page.locator("tr[data-rule=browser-pin]").get_by_role("button", name="Delete").click()
    assert "No rules." in page.inner_text("#rules")
    wait_until(lambda: _first(edge, cookie) != PINNED, 20, "the edge kept the deleted rule")
    shot(page, tmp_path, "rule-deleted")
