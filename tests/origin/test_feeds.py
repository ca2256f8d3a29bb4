"""Edge feeds: segment lists (ETag, 304, CDN-Cache-Control, Cache-Tag, 404), config, heartbeat."""

from __future__ import annotations

import orjson
import pytest

from cache_keys.wire import parse_edge_config, parse_segment_list
from tests.support import data
from tests.support.data import EXPER, MERCH, SERVICE, bearer

pytestmark = pytest.mark.anyio
SEG = data.hseg("new|grocery|low")


def seed(r) -> None:
    data.put_list(
        r, SEG, "control", data.items(("milk", 3, "dairy"), ("Bread-1", 2, "bakery")), "v1"
    )
    data.put_popular(r, data.items(("pop", 1, "toys")))


async def test_segment_list_is_cacheable_tagged_and_revalidates(client, redis_client):
    seed(redis_client)
    r = await client.get(f"/v1/segments/{SEG}/list", params={"variant": "control"})
    assert r.status_code == 200
    sl = parse_segment_list(r.json())
    assert sl.hseg == SEG and [i.item for i in sl.items] == ["milk", "Bread-1"]
    assert r.headers["etag"] == '"v1"'
    cdn = r.headers["cdn-cache-control"]
    assert "max-age=60" in cdn and "stale-while-revalidate=300" in cdn and "stale-if-error=" in cdn
    tags = r.headers["cache-tag"].split(",")
    assert f"seg:{SEG}" in tags and "route:home" in tags
    assert "sku:milk" in tags and "sku:bread-1" in tags
    again = await client.get(f"/v1/segments/{SEG}/list", headers={"If-None-Match": '"v1"'})
    assert again.status_code == 304 and again.content == b""


async def test_list_cache_tags_name_experiments_serving_the_variant(client, redis_client):
    seed(redis_client)
    data.put_list(redis_client, SEG, "fresh", data.items(("apple", 1, "fruit")), "f1")
    body = {
        "key": "fresh-lists",
        "variations": [{"name": "control"}, {"name": "fresh", "list_variant": "fresh"}],
    }
    await client.post("/v1/admin/experiments", json=body, headers=bearer(EXPER))
    await client.post("/v1/admin/experiments/fresh-lists/start", headers=bearer(EXPER))
    r = await client.get(f"/v1/segments/{SEG}/list", params={"variant": "fresh", "route": "pdp"})
    tags = r.headers["cache-tag"].split(",")
    assert "exp:fresh-lists" in tags and "route:pdp" in tags and "route:home" not in tags


async def test_masked_items_leave_the_list_and_change_its_etag(client, redis_client):
    seed(redis_client)
    await client.post(
        "/v1/admin/invalidations",
        json={"tags": ["sku:milk"], "mode": "hard"},
        headers=bearer(MERCH),
    )
    r = await client.get(f"/v1/segments/{SEG}/list", headers={"If-None-Match": '"v1"'})
    assert r.status_code == 200
    assert [i["item"] for i in r.json()["items"]] == ["Bread-1"]
    assert r.headers["etag"].startswith('"v1-m')


async def test_unknown_segment_or_variant_is_404_and_bad_input_400(client, redis_client):
    seed(redis_client)
    r = await client.get(f"/v1/segments/{'b' * 16}/list")
    assert r.status_code == 404 and r.json()["field"] == "hseg"
    r = await client.get(f"/v1/segments/{SEG}/list", params={"variant": "nope"})
    assert r.status_code == 404 and r.json()["field"] == "variant"
    r = await client.get("/v1/segments/NOT-AN-HSEG/list")
    assert r.status_code == 400 and r.json()["field"] == "hseg"
    r = await client.get(f"/v1/segments/{SEG}/list", params={"page": "2"})
    assert r.status_code == 400 and r.json()["field"] == "page"


async def test_edge_config_parses_and_revalidates(client, redis_client):
    seed(redis_client)
    r = await client.get("/v1/edge/config")
    cfg = parse_edge_config(r.json())
    assert SEG in cfg.segments and cfg.segments[SEG].lists == {"control": "v1"}
    assert [i.item for i in cfg.default_items] == ["pop"] and "buy-again" in cfg.routes
    assert r.headers["etag"] == f'W/"{cfg.etag}"'
    same = await client.get("/v1/edge/config", headers={"If-None-Match": r.headers["etag"]})
    assert same.status_code == 304
    await client.post(
        "/v1/admin/invalidations",
        json={"tags": ["cat:dairy"], "mode": "soft"},
        headers=bearer(MERCH),
    )
    changed = await client.get("/v1/edge/config", headers={"If-None-Match": r.headers["etag"]})
    assert changed.status_code == 200
    assert parse_edge_config(changed.json()).generations == {"cat:dairy": (1, 0)}


async def test_heartbeat_is_stored_and_validated(client, redis_client):
    beat = {"edge_id": "edge-1", "config_etag": "abc", "generations": {"cat:x": [1, 0]},
            "counts": {"hit": 5, "stale": 1, "miss": 2}}  # fmt: skip
    assert (await client.post("/v1/edge/heartbeat", json=beat)).status_code == 401
    r = await client.post("/v1/edge/heartbeat", json=beat, headers=bearer(SERVICE))
    assert r.status_code == 204
    stored = orjson.loads(redis_client.hget(data.KEYS.edges, "edge-1"))
    assert stored["counts"] == {"hit": 5, "stale": 1, "miss": 2}
    assert stored["received_ms"] == data.NOW_MS
    bad = await client.post(
        "/v1/edge/heartbeat", json={**beat, "counts": {"hit": -1}}, headers=bearer(SERVICE)
    )
    assert bad.status_code == 400 and bad.json()["field"] == "counts"


TRAFFIC = {"requests": 40, "bytes_sent": 90_000, "origin_fetches": 4, "origin_bytes": 9_000,
           "uptime_s": 120}  # fmt: skip


async def test_heartbeat_traffic_counters_are_optional_stored_and_validated(client, redis_client):
    beat = {"edge_id": "edge-2", "config_etag": "abc", "counts": {"hit": 5}}
    old = await client.post("/v1/edge/heartbeat", json=beat, headers=bearer(SERVICE))
    assert old.status_code == 204  # an edge older than the counters
    assert orjson.loads(redis_client.hget(data.KEYS.edges, "edge-2"))["traffic"] is None
    r = await client.post(
        "/v1/edge/heartbeat", json={**beat, "traffic": TRAFFIC}, headers=bearer(SERVICE)
    )
    assert r.status_code == 204
    assert orjson.loads(redis_client.hget(data.KEYS.edges, "edge-2"))["traffic"] == TRAFFIC
    missing = {k: v for k, v in TRAFFIC.items() if k != "uptime_s"}
    for traffic, field in (
        (missing, "traffic"),
        ({**TRAFFIC, "extra": 1}, "traffic"),
        ([1, 2, 3, 4, 5], "traffic"),
        ({**TRAFFIC, "requests": -1}, "traffic.requests"),
        ({**TRAFFIC, "bytes_sent": 1.5}, "traffic.bytes_sent"),
        ({**TRAFFIC, "origin_fetches": True}, "traffic.origin_fetches"),
        ({**TRAFFIC, "origin_bytes": 2**60}, "traffic.origin_bytes"),
    ):
        bad = await client.post(
            "/v1/edge/heartbeat", json={**beat, "traffic": traffic}, headers=bearer(SERVICE)
        )
        assert bad.status_code == 400 and bad.json()["field"] == field, traffic
    # the refused beats left the last good record alone
    assert orjson.loads(redis_client.hget(data.KEYS.edges, "edge-2"))["traffic"] == TRAFFIC


async def test_the_anonymous_segment_is_served_the_popular_list(client, redis_client):
    seed(redis_client)
    anon = "a" * 16  # never in the registry: the segment of shoppers without a valid cookie
    data.put_popular(redis_client, data.items(("Milk-9", 0.9, "dairy"), ("Tea-2", 0.5, "drinks")))
    r = await client.get(f"/v1/segments/{anon}/list")
    assert r.status_code == 200 and r.json()["hseg"] == anon
    assert [i["item"] for i in r.json()["items"]] == ["Milk-9", "Tea-2"]
    assert f"seg:{anon}" in r.headers["cache-tag"] and "sku:milk-9" in r.headers["cache-tag"]
