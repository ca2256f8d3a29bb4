"""The storefront in a real browser (Debian's Chromium, headless) through a real edge process in
front of a real origin on a seeded Redis: pages cached by the edge, the rail fetched from the
edge's rail route and shown with names, pictures and prices, the debug panel, the view event.
Screenshots go to each test's tmp_path (never committed)."""

from __future__ import annotations

import time

import httpx
import pytest
import redis

from cache_keys import new_shopper_id
from segmenter.schema import Keys
from tests.support import data
from tests.support.data import shopper_cookie

pytestmark = pytest.mark.browser
KEYS = Keys("p13n")
EXPERIMENT = {
    "key": "shop-layout",
    "name": "Shop layout",
    "variations": [{"name": "control"}, {"name": "bold"}],
    "weights": [0.5, 0.5],
}


@pytest.fixture(scope="module")
def experiment(stack, edge) -> str:
    """One running experiment, so the rail names a variant; returned once the edge holds the
    config that has it (the edge refreshes its config after the config's max-age)."""
    r = stack.api("POST", "/v1/admin/experiments", data.EXPER, json=EXPERIMENT)
    assert r.status_code == 201, r.text
    r = stack.api("POST", "/v1/admin/experiments/shop-layout/start", data.EXPER)
    assert r.status_code == 200, r.text
    cookie = shopper_cookie(new_shopper_id(), 0, time.time())
    deadline = time.monotonic() + 30
    while True:
        r = httpx.get(edge.url + "/p13n/v1/rail/home", headers={"cookie": cookie}, timeout=5)
        if r.status_code == 200 and "shop-layout" in r.json().get("variants", {}):
            return "shop-layout"
        assert time.monotonic() < deadline, f"the edge never assigned the experiment: {r.text}"
        time.sleep(0.2)


def shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module", autouse=True)
def edge_has_its_config(edge) -> None:
    """Until the edge holds the origin's edge config it answers the (empty) default rail."""
    cookie = shopper_cookie(new_shopper_id(), 0, time.time())
    deadline = time.monotonic() + 20
    while True:
        r = httpx.get(edge.url + "/p13n/v1/rail/home", headers={"cookie": cookie}, timeout=5)
        if r.status_code == 200 and r.json()["items"]:
            return
        assert time.monotonic() < deadline, f"the edge never served a rail: {r.text}"
        time.sleep(0.2)


def as_returning_shopper(page, edge) -> str:
    """Cookies of a returning shopper of the first seeded segment (its list is in the
    catalog); returns the shopper id."""
    sid = new_shopper_id()
    for part in shopper_cookie(sid, 0, time.time()).split("; "):
        name, _, value = part.partition("=")
        page.context.add_cookies([{"name": name, "value": value, "url": edge.url}])
    return sid


def wait_for_rail(page) -> None:
    page.wait_for_selector("#rail[data-loaded='true']")


def test_the_home_page_shows_a_rail_from_the_edge(page, stack, edge, tmp_path) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    sid = as_returning_shopper(page, edge)
    with page.expect_response(lambda r: "/p13n/v1/rail/home" in r.url) as answered:
        first = page.goto(edge.url + "/shop/")
    assert first is not None and first.status == 200
    assert page.title() == "Home · p13n shop"
    wait_for_rail(page)
    tiles = page.locator("#rail-items .tile")
    assert tiles.count() == 8
    names = tiles.locator(".name").all_inner_texts()
    prices = tiles.locator(".price").all_inner_texts()
    assert all(n.strip() for n in names) and all(p.startswith("$") for p in prices)
    # Named items are drawn from the rail answer itself; only the others come as tiles.
    rail = answered.value.json()["items"]
    assert [t.get_attribute("data-sku") for t in tiles.all()] == [i["item"] for i in rail]
    named = [i for i in rail if i.get("name")]
    assert named and len(named) < len(rail)
    assert [n for n, i in zip(names, rail, strict=True) if i.get("name")] == [
        i["name"] for i in named
    ]
    tile_skus = next(u.split("items=")[1] for u in urls if "/shop/tiles" in u).split(",")
    assert sorted(tile_skus) == sorted(i["item"] for i in rail if not i.get("name"))
    loaded = page.eval_on_selector_all(
        "#rail-items img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)"
    )
    assert loaded and all(loaded)
    assert page.is_hidden("#debug") and page.is_hidden("#rail-items .reason")
    shot(page, tmp_path, "shop-home")
    # No URL the page asked for carries the shopper id.
    assert any("/p13n/v1/rail/home" in u for u in urls) and any("/shop/tiles" in u for u in urls)
    assert not [u for u in urls if sid in u]
    # The page the browser loaded is in the edge's store: the next shopper gets a hit (asked
    # outside the browser, whose own HTTP cache would answer instead).
    again = httpx.get(edge.url + "/shop/", timeout=5)
    assert again.headers["cache-status"].startswith("p13n-edge; hit;")


def test_the_debug_panel_shows_variant_cache_status_and_reasons(
    page, stack, edge, experiment, tmp_path
) -> None:
    as_returning_shopper(page, edge)
    page.goto(edge.url + "/shop/?debug=1")
    wait_for_rail(page)
    assert page.is_visible("#debug")
    assert "p13n-edge" in page.inner_text("#debug-cache-status")
    assert page.inner_text("#debug-variants") in {f"{experiment}=control", f"{experiment}=bold"}
    rows = page.locator("#debug-items tbody tr")
    assert rows.count() == 8
    reasons = page.locator("#rail-items .reason").all_inner_texts()
    assert len(reasons) == 8 and all(reasons)
    assert rows.nth(0).locator("td").nth(3).inner_text() == reasons[0]
    shot(page, tmp_path, "shop-debug")
    # The choice is remembered in a cookie for the shop's pages, and can be turned off.
    page.goto(edge.url + "/shop/c/" + page.locator("header nav a").first.inner_text().lower())
    wait_for_rail(page)
    assert page.is_visible("#debug")
    page.goto(edge.url + "/shop/?debug=0")
    wait_for_rail(page)
    assert page.is_hidden("#debug")


def test_a_product_page_sends_its_view_and_cart_events(page, stack, edge, tmp_path) -> None:
    streams = [KEYS.stream(p) for p in range(4)]
    client: redis.Redis = stack.redis

    def entries() -> int:
        return sum(client.xlen(s) for s in streams)

    before = entries()
    as_returning_shopper(page, edge)
    page.goto(edge.url + "/shop/")
    wait_for_rail(page)
    page.locator("#rail-items .tile .name").first.click()
    page.wait_for_selector("#product")
    assert page.locator("#rail").get_attribute("data-route") == "pdp"
    wait_for_rail(page)
    page.click("#add-to-cart")  # flushes the buffered view and the add_to_cart
    shot(page, tmp_path, "shop-product")
    deadline = time.monotonic() + 10
    while entries() < before + 2:
        assert time.monotonic() < deadline, "the product page's events never reached a stream"
        time.sleep(0.1)


OVERLAPS = """() => {
  const box = e => e.getBoundingClientRect();
  const hit = (a, b) =>
    a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const panel = box(document.getElementById("debug"));
  return [...document.querySelectorAll(".tile, main h1, main h2")]
    .filter(e => hit(box(e), panel)).map(e => e.dataset.sku || e.textContent.trim());
}"""


@pytest.mark.parametrize("width", [1280, 390])
def test_the_debug_panel_covers_no_tile_at_desktop_or_phone_width(
    page, stack, edge, width, tmp_path
) -> None:
    """The panel once floated (position: fixed) over the rail's right-hand tiles at 1280 px.
    It now takes a column of its own when there is room and follows the page when not: no
    tile or heading under it, anywhere on the page, and nothing wider than the window."""
    page.set_viewport_size({"width": width, "height": 900})
    as_returning_shopper(page, edge)
    page.goto(edge.url + "/shop/?debug=1")
    wait_for_rail(page)
    assert page.is_visible("#debug")
    for y in (0, 10_000):  # at the top and scrolled to the bottom (a fixed panel stays put)
        page.evaluate(f"window.scrollTo(0, {y})")
        assert page.evaluate(OVERLAPS) == [], f"covered at {width} px, scrolled to {y}"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shot(page, tmp_path, f"shop-debug-{width}")
