"""Catalog API: strict input, out-of-stock purges, restock, bulk CSV and JSON Lines."""

from __future__ import annotations

import orjson
import pytest

from origin.app import create_app
from origin.settings import Settings
from tests.support import data
from tests.support.asgi import app_client
from tests.support.data import EXPER, MERCH, bearer

pytestmark = pytest.mark.anyio
H = bearer(MERCH)
MILK = {"stock": 10, "price": 1.25, "category": "dairy", "repurchasable": True}


async def test_put_get_and_audit(client, redis_client):
    r = await client.put("/v1/admin/catalog/MILK-1", json=MILK, headers=H)
    body = r.json()
    assert r.status_code == 200 and body["before"] is None and body["invalidation"] is None
    assert body["after"]["durable"] is False and body["after"]["stock"] == 10
    got = (await client.get("/v1/admin/catalog/MILK-1", headers=H)).json()
    assert got["sku"] == "MILK-1" and got["price"] == 1.25
    stored = orjson.loads(redis_client.hget(data.KEYS.catalog, "MILK-1"))
    assert stored == {
        "category": "dairy",
        "price": 1.25,
        "stock": 10,
        "durable": False,
        "updated_ms": data.NOW_MS,
    }
    kettle = {"stock": 3, "price": 30, "category": "home", "durable": True}
    assert (await client.put("/v1/admin/catalog/KET-1", json=kettle, headers=H)).json()["after"][
        "durable"
    ] is True
    audit = await client.get(
        "/v1/admin/audit", params={"target": "sku:MILK-1"}, headers=bearer(data.ADMIN)
    )
    assert audit.json()["entries"][0]["after"]["price"] == 1.25


async def test_going_out_of_stock_purges_hard_by_itself_and_restock_unmasks(client, redis_client):
    await client.put("/v1/admin/catalog/MILK-1", json=MILK, headers=H)
    out = (
        await client.put("/v1/admin/catalog/MILK-1", json={**MILK, "stock": 0}, headers=H)
    ).json()
    assert out["invalidation"] is not None and out["before"]["stock"] == 10
    inv = (await client.get(f"/v1/admin/invalidations/{out['invalidation']}", headers=H)).json()
    assert inv["mode"] == "hard" and inv["tags"] == ["sku:milk-1"] and inv["mask_add"] == ["MILK-1"]
    assert inv["reason"] == "out of stock"
    assert redis_client.zscore(data.KEYS.item_mask, "MILK-1") is not None
    still = (
        await client.put("/v1/admin/catalog/MILK-1", json={**MILK, "stock": 0}, headers=H)
    ).json()
    assert still["invalidation"] is None  # already out: no new purge
    back = (await client.put("/v1/admin/catalog/MILK-1", json=MILK, headers=H)).json()
    assert back["unmasked"] is True
    assert redis_client.zscore(data.KEYS.item_mask, "MILK-1") is None


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({**MILK, "stock": -1}, "stock", 400),
        ({**MILK, "stock": 1.5}, "stock", 400),
        ({**MILK, "price": "1"}, "price", 400),
        ({**MILK, "category": "Dairy Products"}, "category", 400),
        ({**MILK, "durable": True, "repurchasable": True}, "durable", 400),
        ({**MILK, "durable": "yes"}, "durable", 400),
        ({**MILK, "colour": "white"}, "colour", 400),
        # 422: a field that must equal the path, which the OpenAPI schema can only describe
        ({**MILK, "sku": "OTHER"}, "sku", 422),
        ([1, 2], "$", 400),
    ],
)
async def test_bad_items_are_4xx_naming_the_field(client, body, field, status):
    r = await client.put("/v1/admin/catalog/MILK-1", json=body, headers=H)
    assert r.status_code == status and r.json()["field"] == field, r.text


async def test_bad_sku_and_unknown_sku(client):
    r = await client.put("/v1/admin/catalog/bad%20sku", json=MILK, headers=H)
    assert r.status_code == 400 and r.json()["field"] == "sku"
    assert (await client.get("/v1/admin/catalog/NOPE", headers=H)).status_code == 404


async def test_bulk_csv_import(client, redis_client):
    await client.put("/v1/admin/catalog/A", json=MILK, headers=H)
    csv = "sku,stock,price,category,durable\nA,0,1.0,dairy,false\nB,5,2.5,home,true\n"
    r = await client.post(
        "/v1/admin/catalog", content=csv, headers={**H, "Content-Type": "text/csv"}
    )
    body = r.json()
    assert r.status_code == 200 and body["imported"] == 2 and body["out_of_stock"] == ["A"]
    assert len(body["invalidations"]) == 1
    assert orjson.loads(redis_client.hget(data.KEYS.catalog, "B"))["durable"] is True


async def test_bulk_jsonl_import_and_line_errors(client, redis_client):
    lines = "\n".join(
        orjson.dumps({"sku": s, "stock": 1, "price": 1, "category": "c"}).decode() for s in "XYZ"
    )
    ctype = {"Content-Type": "application/x-ndjson"}
    r = await client.post("/v1/admin/catalog", content=lines, headers={**H, **ctype})
    assert r.json()["imported"] == 3
    bad = lines + '\n{"sku": "W", "stock": -5, "price": 1, "category": "c"}'
    r = await client.post("/v1/admin/catalog", content=bad, headers={**H, **ctype})
    assert r.status_code == 400 and r.json()["field"] == "line 4" and "stock" in r.json()["detail"]
    assert redis_client.hget(data.KEYS.catalog, "W") is None  # nothing written
    r = await client.post(
        "/v1/admin/catalog", content="x", headers={**H, "Content-Type": "text/xml"}
    )
    assert r.status_code == 400
    dup = "sku,stock,price,category\nA,1,1,c\nA,2,1,c\n"
    r = await client.post(
        "/v1/admin/catalog", content=dup, headers={**H, "Content-Type": "text/csv"}
    )
    assert r.status_code == 422 and r.json()["field"] == "line 3"  # a rule across rows


async def test_import_body_limit(redis_url):
    settings = Settings(redis_url=redis_url, admin_tokens=dict(data.TOKENS), max_import_bytes=100)
    async with app_client(create_app(settings)) as c:
        big = "sku,stock,price,category\n" + "A,1,1,c\n" * 50
        r = await c.post(
            "/v1/admin/catalog", content=big, headers={**H, "Content-Type": "text/csv"}
        )
        assert r.status_code == 413


async def test_experimenters_cannot_touch_the_catalog(client):
    r = await client.put("/v1/admin/catalog/A", json=MILK, headers=bearer(EXPER))
    assert r.status_code == 403


async def test_a_retry_makes_the_purge_a_failed_first_attempt_lost(client, redis_client):
    await client.put("/v1/admin/catalog/MILK-1", json=MILK, headers=H)
    # The first attempt's catalog write committed, then Redis failed before the purge: stock 0
    # is stored, the sku is not in the mask and no invalidation exists.
    stored = orjson.loads(redis_client.hget(data.KEYS.catalog, "MILK-1"))
    redis_client.hset(data.KEYS.catalog, "MILK-1", orjson.dumps({**stored, "stock": 0}))
    retry = await client.put("/v1/admin/catalog/MILK-1", json={**MILK, "stock": 0}, headers=H)
    assert retry.status_code == 200 and retry.json()["invalidation"] is not None
    assert redis_client.zscore(data.KEYS.item_mask, "MILK-1") is not None
    again = await client.put("/v1/admin/catalog/MILK-1", json={**MILK, "stock": 0}, headers=H)
    assert again.json()["invalidation"] is None  # purged and masked: nothing left to repair


async def test_a_bulk_retry_purges_what_is_out_but_unmasked(client, redis_client):
    redis_client.hset(data.KEYS.catalog, "A", orjson.dumps({**MILK, "stock": 0}))
    csv = "sku,stock,price,category\nA,0,1.0,dairy\nB,0,1.0,dairy\nC,3,1.0,dairy\n"
    r = await client.post(
        "/v1/admin/catalog", content=csv, headers={**H, "Content-Type": "text/csv"}
    )
    assert r.json()["out_of_stock"] == ["A", "B"] and len(r.json()["invalidations"]) == 1


async def test_an_error_reply_is_a_500_that_does_not_trip_the_breaker(client, redis_client):
    redis_client.set(data.KEYS.catalog, "not a hash")  # WRONGTYPE for every catalog command
    r = await client.get("/v1/admin/catalog/MILK-1", headers=H)
    assert r.status_code == 500 and r.json()["type"].endswith("/store-rejected")
    assert "retry-after" not in r.headers
    redis_client.delete(data.KEYS.catalog)  # the clock has not moved: an open breaker would 503
    assert (await client.put("/v1/admin/catalog/MILK-1", json=MILK, headers=H)).status_code == 200


@pytest.mark.parametrize(
    "path", ["a%2F..%2F..%2Fb", "a%2F.%2Fb", "a%2F%2Fb", "a%2F", "a%2F..", "..%2Fb"]
)
async def test_a_sku_is_an_item_id_not_a_path(client, redis_client, path):
    r = await client.put(f"/v1/admin/catalog/{path}", json=MILK, headers=H)
    assert r.status_code == 400 and r.json()["field"] == "sku", r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert redis_client.hlen(data.KEYS.catalog) == 0


async def test_slashes_between_parts_are_fine(client):
    r = await client.put("/v1/admin/catalog/shoes%2F42.v2", json=MILK, headers=H)
    assert r.status_code == 200 and r.json()["sku"] == "shoes/42.v2"


async def test_a_csv_import_with_a_utf8_bom_is_accepted(client, redis_client):
    csv = "\ufeffsku,stock,price,category\nA,1,1.0,dairy\n".encode()
    r = await client.post(
        "/v1/admin/catalog", content=csv, headers={**H, "Content-Type": "text/csv"}
    )
    assert r.status_code == 200 and r.json()["imported"] == 1, r.text
    assert redis_client.hget(data.KEYS.catalog, "A") is not None
