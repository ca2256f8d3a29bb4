"""Catalog names, images and category paths (issue 18, item 3): stored, validated, shown."""

from __future__ import annotations

import re

import pytest

from tests.support.data import MERCH, bearer

pytestmark = pytest.mark.anyio
MILK = {"stock": 5, "price": 1.25, "category": "dairy", "name": "Whole milk 1 l",
        "image_url": "https://cdn.shop.example/img/milk.jpg",
        "category_path": "Grocery > Dairy > Milk"}  # fmt: skip


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def sign_in(client, token: str) -> None:
    page = await client.get("/console/signin")
    r = await client.post("/console/signin", data={"csrf": csrf_of(page.text), "token": token})
    assert r.status_code == 303, r.text


async def test_labels_are_stored_and_read_back(client):
    r = await client.put("/v1/admin/catalog/SKU-1", json=MILK, headers=bearer(MERCH))
    assert r.status_code == 200, r.text
    got = (await client.get("/v1/admin/catalog/SKU-1", headers=bearer(MERCH))).json()
    assert {k: got[k] for k in ("name", "image_url", "category_path")} == {
        "name": "Whole milk 1 l", "image_url": "https://cdn.shop.example/img/milk.jpg",
        "category_path": "Grocery > Dairy > Milk"}  # fmt: skip
    bare = {k: MILK[k] for k in ("stock", "price", "category")}
    await client.put("/v1/admin/catalog/SKU-2", json=bare, headers=bearer(MERCH))
    got = (await client.get("/v1/admin/catalog/SKU-2", headers=bearer(MERCH))).json()
    assert "name" not in got and "image_url" not in got  # optional: stored only when set


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_url", "javascript:alert(1)"),
        ("image_url", 'https://cdn.example/a"onerror="x'),
        ("image_url", "https://cdn.example/a b.jpg"),
        ("image_url", "/relative.jpg"),
        ("name", "milk\n<script>"),
        ("name", "x" * 201),
        ("category_path", 7),
    ],
)
async def test_bad_labels_are_400_naming_the_field(client, field, value):
    r = await client.put("/v1/admin/catalog/SKU-1", json={**MILK, field: value},
                         headers=bearer(MERCH))  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == field


async def test_csv_import_takes_the_label_columns(client):
    csv = (
        "sku,stock,price,category,durable,name,image_url,category_path\n"
        "SKU-9,3,2.5,bakery,false,Sourdough loaf,https://cdn.example/b.jpg,Grocery > Bakery\n"
    )
    r = await client.post("/v1/admin/catalog", content=csv.encode(),
                          headers={**bearer(MERCH), "content-type": "text/csv"})  # fmt: skip
    assert r.status_code == 200, r.text
    got = (await client.get("/v1/admin/catalog/SKU-9", headers=bearer(MERCH))).json()
    assert got["name"] == "Sourdough loaf" and got["category_path"] == "Grocery > Bakery"


async def test_the_console_shows_name_and_image_and_keeps_them_on_a_price_change(client):
    await client.put("/v1/admin/catalog/SKU-1", json=MILK, headers=bearer(MERCH))
    await sign_in(client, MERCH)
    page = await client.get("/console/catalog", params={"sku": "SKU-1"})
    assert '<span id="item-name">Whole milk 1 l</span>' in page.text
    assert 'id="item-image" src="https://cdn.shop.example/img/milk.jpg"' in page.text
    assert "Grocery &gt; Dairy &gt; Milk" in page.text
    assert "img-src 'self' https:;" in page.headers["content-security-policy"]
    form = {"csrf": csrf_of(page.text), "op": "price", "price": "1.50"}
    r = await client.post("/console/catalog/SKU-1", data=form)
    assert r.status_code == 303, r.text
    got = (await client.get("/v1/admin/catalog/SKU-1", headers=bearer(MERCH))).json()
    assert (got["price"], got["name"], got["image_url"]) == (1.5, MILK["name"], MILK["image_url"])
