"""The merchandising pages over HTTP in-process: lookup by any case and by name, the purge
log, purge-all's second step, banners that say what is true, the rules page."""

from __future__ import annotations

import pytest

from origin.app import create_app
from origin.settings import Settings
from tests.origin.console.test_pages import csrf_of, sign_in
from tests.support.asgi import app_client
from tests.support.data import MERCH, TOKENS, bearer

pytestmark = pytest.mark.anyio
H = bearer(MERCH)
MILK = {"stock": 5, "price": 1.0, "category": "dairy", "name": "Whole Milk 1 l"}


@pytest.fixture
async def client(redis_url):
    settings = Settings(redis_url=redis_url, admin_tokens=dict(TOKENS), partitions=2)
    async with app_client(create_app(settings)) as c:
        yield c


async def test_a_sku_typed_in_lower_case_or_by_name_is_found(client):
    for sku in ("SKU-0042", "SKU-0043", "TEA-1"):
        assert (await client.put(f"/v1/admin/catalog/{sku}", json=MILK, headers=H)).is_success
    await sign_in(client, MERCH)
    page = await client.get("/console/catalog", params={"sku": "sku-0042"})
    assert 'id="item"' in page.text and "No sku" not in page.text  # was: No sku "sku-0042"
    several = await client.get("/console/catalog", params={"sku": "sku-004"})
    assert several.text.count('href="/console/catalog?sku=SKU-004') == 2
    api = await client.get("/v1/admin/catalog", params={"q": "milk"}, headers=H)
    assert [i["sku"] for i in api.json()["items"]] == ["SKU-0042", "SKU-0043", "TEA-1"]
    api = await client.get("/v1/admin/catalog", params={"q": "tea-"}, headers=H)
    assert [i["sku"] for i in api.json()["items"]] == ["TEA-1"]
    assert (await client.get("/v1/admin/catalog", headers=H)).status_code == 400


async def test_purging_everything_takes_a_second_step(client):
    csrf = await sign_in(client, MERCH)
    form = {"csrf": csrf, "kind": "all", "mode": "hard", "reason": "prices"}
    first = await client.post("/console/invalidations", data=form)
    assert first.status_code == 200 and 'id="confirm-form"' in first.text
    log = (await client.get("/v1/admin/invalidations", headers=H)).json()
    assert log["total"] == 0  # nothing sent yet
    wrong = await client.post("/console/invalidations", data={**form, "confirm": "yes"})
    assert wrong.status_code == 400 and 'id="error-confirm"' in wrong.text
    done = await client.post("/console/invalidations", data={**form, "confirm": "everything"})
    assert done.status_code == 303
    log = (await client.get("/v1/admin/invalidations", headers=H)).json()
    assert [(r["tags"], r["mode"]) for r in log["invalidations"]] == [(["*"], "hard")]
    page = await client.get("/console/purges")
    assert "no-live-edges" in page.text and "prices" in page.text


async def test_the_out_of_stock_banner_says_a_purge_was_sent_not_that_edges_have_it(client):
    assert (await client.put("/v1/admin/catalog/SKU-1", json=MILK, headers=H)).is_success
    csrf = await sign_in(client, MERCH)
    r = await client.post(
        "/console/catalog/SKU-1", data={"csrf": csrf, "op": "stock", "stock": "0"}
    )
    page = await client.get(r.headers["location"])
    assert "sent to the edges" in page.text and "from every edge" not in page.text


async def test_the_rules_page_creates_lists_and_deletes(client):
    csrf = await sign_in(client, MERCH)
    form = {"csrf": csrf, "name": "deal", "kind": "pin", "target": "skus", "value": "A-1, B-2",
            "position": "2", "routes": "home"}  # fmt: skip
    r = await client.post("/console/rules", data=form)
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert 'data-rule="deal"' in page.text and "A-1, B-2" in page.text and "pin at 2" in page.text
    bad = await client.post("/console/rules", data={**form, "name": "x", "target": "category",
                                                     "value": ""})  # fmt: skip
    assert bad.status_code == 400 and 'id="error-value"' in bad.text
    gone = await client.post("/console/rules/deal/delete", data={"csrf": csrf_of(page.text)})
    assert gone.status_code == 303
    assert "No rules." in (await client.get("/console/rules")).text
