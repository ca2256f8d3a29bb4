"""An experiment with a named ranking strategy made in the console (real Chromium, a real
origin process and a real edge process on a real Redis): the form shows what each strategy
does, and a shopper in the strategy's arm gets the rail the strategy says, from the origin and
from the edge, and its results page counts the exposure the edge sent once the real processor
applied it. Screenshots go to the test's tmp_path (never committed)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from statistics import mean

import httpx
import pytest

from cache_keys import new_shopper_id
from tests.support import data
from tests.support import segmenter as seg
from tests.support.browser import shot, sign_in
from tests.support.data import shopper_cookie
from tests.support.timing import wait_until

pytestmark = pytest.mark.browser
KEY = "budget-rail"
PRICES = {i.item: i.price for seg in range(10) for i in data.shop_list(seg)}


def _rail(url: str, cookie: str) -> dict:
    r = httpx.get(url, headers={"cookie": cookie}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def _mean_price(doc: dict) -> float:
    return mean(PRICES[i["item"]] for i in doc["items"])


def test_a_named_strategy_picked_in_the_console_changes_the_rail(page, stack, edge, tmp_path):
    shopper = new_shopper_id()
    data.put_shopper(stack.redis, shopper, segment_hseg=data.HSEGS[1])
    cookie = shopper_cookie(shopper, 1, time.time())
    origin_url = stack.url + "/v1/recommendations?route=home&k=10"
    edge_url = edge.url + "/p13n/v1/rail/home?k=10"
    before_origin, before_edge = _rail(origin_url, cookie), _rail(edge_url, cookie)
    assert KEY not in before_origin["variants"] and KEY not in before_edge["variants"]

    sign_in(page, stack, data.EXPER)
    page.goto(stack.url + "/console/experiments/new")
    budget = page.locator("#strategies tr[data-strategy=budget]")
    assert "Prefers cheaper items" in budget.inner_text()
    shot(page, tmp_path, "strategy-form")
    page.fill("#key", KEY)
    page.fill("#variations", "control: default\ncheap: budget")
    page.fill("#weights", "0, 1")  # every shopper in the strategy's arm
    page.fill("#routes", "home")
    page.get_by_role("button", name="Create draft").click()
    assert "created as a draft" in page.inner_text(".notice")
    row = page.locator("#variation-strategies tr[data-variation=cheap]")
    assert row.locator(".strategy").inner_text() == "budget"
    assert "Prefers cheaper items" in row.inner_text() and "origin price -0.5" in row.inner_text()
    page.get_by_role("button", name="Start").click()
    assert page.inner_text("#exp-status") == "running"
    shot(page, tmp_path, "strategy-experiment-running")

    wait_until(lambda: KEY in _rail(origin_url, cookie)["variants"], 10, "origin never assigned")
    after_origin = _rail(origin_url, cookie)
    assert after_origin["variants"][KEY] == "cheap"
    assert _mean_price(after_origin) < _mean_price(before_origin)
    wait_until(lambda: KEY in _rail(edge_url, cookie)["variants"], 10, "edge never assigned")
    after_edge = _rail(edge_url, cookie)
    assert after_edge["variants"][KEY] == "cheap"
    assert _mean_price(after_edge) < _mean_price(before_edge)

    # Reading its results: the edge's exposure went to the collector; the real processor
    # applies it, and the results page counts the shopper in the strategy's arm.
    def exposed() -> bool:
        return any(stack.redis.xlen(seg.KEYS.stream(p)) for p in range(seg.PARTITIONS))

    wait_until(exposed, 10, "the edge never sent the exposure")
    url = stack.origin.redis.url
    for p in range(seg.PARTITIONS):  # the processor reads every partition; one was written
        if not stack.redis.exists(seg.KEYS.stream(p)):
            stack.redis.xgroup_create(seg.KEYS.stream(p), seg.GROUP, id="0", mkstream=True)
    with ThreadPoolExecutor(1) as pool:  # its own event loop: Playwright's holds this thread
        pool.submit(seg.run_until_drained, url, seg.settings(url)).result()
    page.goto(stack.url + f"/console/experiments/{KEY}/results")
    assert page.inner_text("#results tr[data-variant=cheap] td:nth-child(2)") == "1"
    assert page.inner_text("#results tr[data-variant=control] td:nth-child(2)") == "0"
    shot(page, tmp_path, "strategy-results")
    print(
        f"mean price of the top 10: origin {_mean_price(before_origin):.2f} -> "
        f"{_mean_price(after_origin):.2f}, edge {_mean_price(before_edge):.2f} -> "
        f"{_mean_price(after_edge):.2f}"
    )
