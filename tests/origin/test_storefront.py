"""The storefront's pages on the origin (in-process, real Redis): plain HTML from the catalog,
the same bytes for every shopper, cacheable by the edge and tagged for purges."""

from __future__ import annotations

import pytest

from tests.support.data import MERCH, bearer

pytestmark = pytest.mark.anyio
H = bearer(MERCH)
CATALOG = {
    "MILK-1": {"category": "dairy", "price": 1.25, "stock": 40},
    "MILK-2": {"category": "dairy", "price": 2.5, "stock": 0},  # out of stock: never shown
    "YOG-1": {"category": "dairy", "price": 0.99, "stock": 3},
    "BREAD-7": {"category": "bakery", "price": 3.1, "stock": 9},
}


@pytest.fixture
async def shop(client):
    for sku, entry in CATALOG.items():
        r = await client.put(f"/v1/admin/catalog/{sku}", json=entry, headers=H)
        assert r.status_code == 200, r.text
    return client


def assert_shared_cacheable(r) -> None:
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"].startswith("public, max-age=")
    assert "stale-if-error" in r.headers["cache-control"]
    assert "set-cookie" not in r.headers and "vary" not in r.headers


async def test_home_lists_the_aisles_with_names_prices_and_pictures(shop) -> None:
    r = await shop.get("/shop/")
    assert_shared_cacheable(r)
    html = r.text
    assert 'href="/shop/c/bakery"' in html and 'href="/shop/c/dairy"' in html
    assert "Bakery 7" in html and "$3.10" in html and 'src="/shop/img/BREAD-7.svg"' in html
    assert 'data-route="home"' in html and '<script src="/shop/static/shop.js"' in html
    tags = r.headers["cache-tag"].split(",")
    assert {"route:shop", "cat:dairy", "cat:bakery", "sku:bread-7"} <= set(tags)


async def test_a_category_shows_its_products_in_stock_only(shop) -> None:
    r = await shop.get("/shop/c/dairy")
    assert_shared_cacheable(r)
    assert "MILK-1" in r.text and "YOG-1" in r.text
    assert "MILK-2" not in r.text and "BREAD-7" not in r.text.split("<main>")[1]
    assert 'aria-current="page">Dairy' in r.text


async def test_a_product_page_carries_what_its_view_event_needs(shop) -> None:
    r = await shop.get("/shop/p/MILK-1")
    assert_shared_cacheable(r)
    assert 'data-sku="MILK-1" data-category="dairy" data-price="1.25"' in r.text
    assert "<h1>Dairy 1</h1>" in r.text and 'data-route="pdp"' in r.text
    assert "sku:milk-1" in r.headers["cache-tag"].split(",")


@pytest.mark.parametrize(
    ("path", "status"),
    [("/shop/c/toys", 404), ("/shop/p/NOPE-1", 404), ("/shop/p/a%20b", 400)],
)
async def test_unknown_or_bad_names_are_problems(shop, path, status) -> None:
    r = await shop.get(path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"


async def test_tiles_of_a_rail_keep_its_order_and_drop_unknown_skus(shop) -> None:
    r = await shop.get("/shop/tiles", params={"items": "YOG-1,GONE-9,MILK-1"})
    assert_shared_cacheable(r)
    assert r.text.index("YOG-1") < r.text.index("MILK-1") and "GONE-9" not in r.text
    assert r.text.count('<li class="tile"') == 2
    bad = await shop.get("/shop/tiles", params={"items": "ok,<script>"})
    assert bad.status_code == 400 and "items" in bad.json()["detail"]


async def test_the_picture_is_an_svg_with_the_name_escaped(shop) -> None:
    r = await shop.get("/shop/img/MILK-1.svg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.text.startswith("<svg") and "Dairy 1" in r.text
    assert r.headers["cache-tag"] == "sku:milk-1"


async def test_pages_are_the_same_bytes_for_every_shopper(shop) -> None:
    plain = await shop.get("/shop/c/dairy")
    cookie = {"cookie": "p13n_sid=AAAAAAAAAAAAAAAAAAAAAA; p13n_shop_debug=1"}
    personal = await shop.get("/shop/c/dairy", headers=cookie)
    assert plain.content == personal.content
    assert "AAAAAAAAAAAAAAAAAAAAAA" not in personal.text
