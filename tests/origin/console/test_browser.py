"""The console in a real browser (Debian's Chromium, headless) against a real origin process
on a real Redis, and for the purge a real edge process. Screenshots go to each test's
tmp_path (never committed)."""

from __future__ import annotations

import time

import httpx
import pytest

from cache_keys import new_shopper_id
from segmenter.schema import Keys
from tests.support import data
from tests.support.browser import shot, sign_in
from tests.support.data import shopper_cookie

pytestmark = pytest.mark.browser
KEYS = Keys("p13n")
ROLE_TOKENS = {"merchandiser": data.MERCH, "experimenter": data.EXPER, "admin": data.ADMIN}
# What each role's navigation shows, and the pages it must be refused.
MERCH_PAGES = [
    "/console/catalog",
    "/console/invalidations",
    "/console/rails",
    "/console/purges",
    "/console/rules",
]
NAV = {
    "merchandiser": (
        {"merchandising", "invalidations", "rails", "purges", "rules"},
        ["/console/experiments"],
    ),
    "experimenter": ({"experiments"}, MERCH_PAGES),
    "admin": (
        {"experiments", "merchandising", "invalidations", "rails", "purges", "rules", "pipeline"},
        [],
    ),
}


def new_experiment(page, stack, **fields: str) -> None:
    page.goto(stack.url + "/console/experiments/new")
    for name, value in fields.items():
        page.fill(f"#{name}", value)
    page.get_by_role("button", name="Create draft").click()


@pytest.mark.parametrize("role", sorted(ROLE_TOKENS))
def test_each_role_sees_only_what_it_allows(page, stack, tmp_path, role) -> None:
    sign_in(page, stack, ROLE_TOKENS[role])
    assert page.inner_text("#role") == role
    shown = set(page.eval_on_selector_all("header nav a", "els => els.map(e => e.dataset.section)"))
    allowed, refused = NAV[role]
    assert shown == allowed
    if role != "admin":
        refused = [*refused, "/console/pipeline"]
    shot(page, tmp_path, f"home-{role}")
    for path in refused:
        response = page.goto(stack.url + path)
        assert response is not None and response.status == 403
        assert "may not open" in page.inner_text("#problem")
    shot(page, tmp_path, f"refused-{role}")
    cookie = next(c for c in page.context.cookies() if c["name"] == "p13n_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert ROLE_TOKENS[role] not in cookie["value"] and f".{role}." in cookie["value"]
    page.get_by_role("button", name="Sign out").click()
    page.goto(stack.url + "/console/experiments")
    assert page.url.endswith("/console/signin")


def test_service_and_unknown_tokens_cannot_sign_in(page, stack, tmp_path) -> None:
    sign_in(page, stack, data.SERVICE)
    assert "Service tokens are for edges" in page.inner_text("#signin-error")
    sign_in(page, stack, "not-a-token-at-all-0000")
    assert "not recognised" in page.inner_text("#signin-error")
    shot(page, tmp_path, "signin-refused")
    page.goto(stack.url + "/console/catalog")
    assert page.url.endswith("/console/signin")


def test_experiment_created_through_the_form_reaches_the_edge_config(page, stack, tmp_path):
    sign_in(page, stack, data.EXPER)
    new_experiment(
        page, stack, key="form-made", name="Made in the form", weights="0.2, 0.8",
        coverage="0.5", layer="console", layer_start="0", layer_end="0.4", routes="home",
        segments=data.hseg("returning|cat0|mid"),
    )  # fmt: skip
    assert "created as a draft" in page.inner_text(".notice")
    assert page.inner_text("#exp-status") == "draft"
    page.get_by_role("button", name="Start").click()
    assert page.inner_text("#exp-status") == "running"
    shot(page, tmp_path, "experiment-started")
    page.goto(stack.url + "/console/experiments")
    assert page.inner_text("tr[data-key=form-made] .status") == "running"
    shot(page, tmp_path, "experiment-list")
    config = httpx.get(stack.url + "/v1/edge/config", timeout=5).json()
    exp = next(e for e in config["experiments"] if e["key"] == "form-made")
    assert exp["weights"] == [0.2, 0.8] and exp["coverage"] == 0.5
    assert exp["namespace"] == ["console", 0.0, 0.4] and exp["routes"] == ["home"]
    assert exp["segments"] == [data.hseg("returning|cat0|mid")]


def test_invalid_weights_are_shown_next_to_the_field(page, stack, tmp_path) -> None:
    sign_in(page, stack, data.EXPER)
    new_experiment(page, stack, key="bad-weights", weights="0.7, 0.7")
    error = page.locator(".field:has(#weights) .field-error")
    assert "weights must sum to 1, not 1.4" in error.inner_text()
    assert page.input_value("#weights") == "0.7, 0.7"  # what was typed is kept
    assert page.locator(".field-error").count() == 1
    shot(page, tmp_path, "invalid-weights")
    assert stack.api("GET", "/v1/admin/experiments/bad-weights", data.EXPER).status_code == 404


def test_markup_in_an_experiment_name_is_shown_as_text(page, stack, tmp_path) -> None:
    name = "<img src=x onerror=\"document.title='owned'\"><b id=injected>bold</b>"
    sign_in(page, stack, data.EXPER)
    new_experiment(page, stack, key="markup-name", name=name)
    assert page.inner_text("#exp-name") == name
    page.goto(stack.url + "/console/experiments")
    assert page.inner_text("tr[data-key=markup-name] .name") == name
    assert page.locator("#injected").count() == 0 and page.locator("img").count() == 0
    assert page.title() != "owned"
    shot(page, tmp_path, "markup-name")


def test_a_form_posted_without_its_csrf_token_is_refused(page, stack, tmp_path) -> None:
    sign_in(page, stack, data.EXPER)
    page.goto(stack.url + "/console/experiments/new")
    page.fill("#key", "no-csrf")
    page.eval_on_selector("#experiment-form input[name=csrf]", "el => el.remove()")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Create draft").click()
    assert posted.value.status == 403
    assert "CSRF" in page.inner_text("#problem")
    shot(page, tmp_path, "csrf-refused")
    assert stack.api("GET", "/v1/admin/experiments/no-csrf", data.EXPER).status_code == 404


def _rail(edge, cookie: str) -> list[str]:
    r = httpx.get(f"{edge.url}/p13n/v1/rail/home?k=10", headers={"cookie": cookie}, timeout=5)
    assert r.status_code == 200
    return [i["item"] for i in r.json()["items"]]


def test_hard_purge_of_a_sku_stops_the_edge_serving_it(page, stack, edge, tmp_path) -> None:
    cookie = shopper_cookie(new_shopper_id(), 1, time.time())
    assert "S1-002" in _rail(edge, cookie)
    sign_in(page, stack, data.MERCH)
    page.goto(stack.url + "/console/invalidations")
    page.check("input[name=kind][value=sku]")
    page.fill("#value", "S1-002")
    page.check("input[name=mode][value=hard]")
    page.fill("#reason", "recalled")
    page.get_by_role("button", name="Push").click()
    assert page.inner_text("#inv-tags") == "sku:s1-002" and page.inner_text("#inv-mode") == "hard"
    page.wait_for_selector("#inv-state.done", timeout=15_000)  # the page polls the status
    assert page.inner_text("#inv-state") == "applied"
    assert int(page.inner_text("#inv-applied")) == int(page.inner_text("#inv-live")) >= 1
    shot(page, tmp_path, "purge-applied")
    assert "S1-002" not in _rail(edge, cookie)


def test_results_page_draws_the_lift_and_warns_on_sample_ratio_mismatch(page, stack, tmp_path):
    doc = {"key": "srm-check", "name": "SRM", "variations": [{"name": "control"}, {"name": "b"}]}
    assert stack.api("POST", "/v1/admin/experiments", data.EXPER, json=doc).status_code == 201
    assert stack.api("POST", "/v1/admin/experiments/srm-check/start", data.EXPER).is_success
    stack.redis.hset(
        KEYS.experiment_counts(0, "srm-check"),
        mapping={"x:control": 1000, "c:control": 100, "o:control": 100, "oq:control": 100,
                 "x:b": 1400, "c:b": 182, "o:b": 182, "oq:b": 182},
    )  # fmt: skip
    sign_in(page, stack, data.EXPER)
    page.goto(stack.url + "/console/experiments/srm-check/results")
    assert "Sample-ratio mismatch" in page.inner_text("#srm-warning")
    assert page.inner_text("tr[data-variant=b] td:nth-child(4)") == "13.00%"
    assert page.locator("#lift-chart circle.point").count() == 1
    assert page.locator("#lift-chart line.ci").count() == 1
    shot(page, tmp_path, "results-srm")


def _shoppers(variant: str, n: int, buyers: list[tuple[int, int]], carts: int) -> dict[str, int]:
    """The processor's per-variant sums for ``n`` shoppers, ``buyers`` as (cents, orders)."""
    return {
        f"x:{variant}": n, f"c:{variant}": len(buyers), f"a:{variant}": carts,
        f"o:{variant}": sum(o for _, o in buyers), f"r:{variant}": sum(r for r, _ in buyers),
        f"rc:{variant}": sum(r for r, _ in buyers), f"rq:{variant}": sum(r * r for r, _ in buyers),
        f"oq:{variant}": sum(o * o for _, o in buyers),
        f"ro:{variant}": sum(r * o for r, o in buyers),
    }  # fmt: skip


def test_results_page_defines_metrics_and_shows_both_intervals(page, stack, tmp_path):
    doc = {"key": "metrics", "name": "Three ways", "weights": [0.34, 0.33, 0.33],
           "variations": [{"name": "control"}, {"name": "b"}, {"name": "c"}]}  # fmt: skip
    assert stack.api("POST", "/v1/admin/experiments", data.EXPER, json=doc).status_code == 201
    assert stack.api("POST", "/v1/admin/experiments/metrics/start", data.EXPER).is_success
    counts = {
        **_shoppers("control", 3400, [(4599, 1)] * 150 + [(12050, 2)] * 20, 500),
        **_shoppers("b", 3300, [(4999, 1)] * 190 + [(13075, 2)] * 25, 560),
        **_shoppers("c", 3300, [(2599, 1)] * 0, 480),  # a variant nobody bought from
        "d:20600:x:control": 1700, "d:20600:c:control": 80, "d:20600:x:b": 1650,
        "d:20600:c:b": 100, "d:20600:x:c": 1650,
        "d:20601:x:control": 1700, "d:20601:c:control": 90, "d:20601:x:b": 1650,
        "d:20601:c:b": 115, "d:20601:x:c": 1650, "k:100000": 10000,
    }  # fmt: skip
    stack.redis.hset(KEYS.experiment_counts(0, "metrics"), mapping=counts)
    sign_in(page, stack, data.EXPER)
    page.goto(stack.url + "/console/experiments/metrics/results")
    defs = page.locator("section.metric p.definition").all_inner_texts()
    assert len(defs) == 4 and "after their first exposure" in defs[0]
    assert page.inner_text("#metric-revenue_per_exposed tr[data-variant=control] .value") == "$2.74"
    assert "Holm-adjusted" in page.inner_text("#method-note")
    assert "c: conversion, revenue_per_exposed" in page.inner_text("#harm")
    c_conv = page.inner_text("#metric-conversion tr[data-variant=c] .rel")
    assert c_conv.startswith("-100.00% [")  # zero conversions: an interval, not a blank
    assert (
        page.locator("#metric-average_order_value tr[data-variant=c] td").nth(2).inner_text()
        == "– (not defined yet)"
    )
    seq = page.inner_text("#metric-conversion tr[data-variant=b] .seq")
    fixed = page.inner_text("#metric-conversion tr[data-variant=b] .diff")
    assert seq.startswith("[") and fixed.count("pp") == 3
    assert page.locator("#timeline tbody tr").count() == 4  # two days x two treatments
    labels = page.locator("#lift-chart text.ci-lo").all_text_contents()
    table = page.inner_text("#results tr[data-variant=b] td:nth-child(6)")
    assert labels[0] in table  # the chart labels the real interval
    svg = page.locator("#lift-chart").bounding_box()
    for label in page.locator("#lift-chart text.ci-hi, #lift-chart text.ci-lo").all():
        box = label.bounding_box()  # drawn whole, not cut at the chart's edge
        assert (
            svg
            and box
            and svg["x"] <= box["x"]
            and box["x"] + box["width"] <= svg["x"] + svg["width"]
        )
    page.set_viewport_size({"width": 1280, "height": 2200})
    shot(page, tmp_path, "results-metrics")


def test_catalog_search_price_and_stock_toggle(page, stack, tmp_path) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, stack, data.MERCH)
    page.goto(stack.url + "/console/catalog")
    page.fill("#sku", "S2-003")
    page.get_by_role("button", name="Find").click()
    assert page.inner_text("#item-category") == "snacks"
    page.fill("#price", "7.25")
    page.get_by_role("button", name="Change price").click()
    assert page.inner_text("#item-price") == "7.25"
    page.get_by_role("button", name="Mark out of stock").click()
    assert "out of stock" in page.inner_text("#item-stock")
    assert "hard purge of the sku was sent to the edges" in page.inner_text(".notice")
    shot(page, tmp_path, "catalog-out-of-stock")
    page.get_by_role("button", name="Back in stock").click()
    assert page.inner_text("#item-stock").startswith("10 ")
    item = stack.api("GET", "/v1/admin/catalog/S2-003", data.MERCH).json()
    assert item["stock"] == 10 and item["price"] == 7.25
