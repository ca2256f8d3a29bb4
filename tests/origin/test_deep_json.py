"""Deeply nested JSON (issue 16, items 1 and 2): the collector refuses it at parse time with
the reason and dead-letters the original bytes; the valid events of the same batch are stored;
the admin DLQ views and other JSON bodies never break on it."""

from __future__ import annotations

import msgpack
import orjson
import pytest

from origin.admin.pipeline import MAX_LIMIT
from origin.body import MAX_DEPTH
from tests.support.data import ADMIN, EXPER, KEYS, NOW_MS

pytestmark = pytest.mark.anyio


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def event(i: int) -> dict[str, object]:
    return {"v": 1, "event_id": f"d{i}", "type": "view", "user": "u1", "item": "sku", "ts": NOW_MS}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def stored(redis_client) -> list[dict]:
    return [
        msgpack.unpackb(f[b"e"]) for p in range(2) for _, f in redis_client.xrange(KEYS.stream(p))
    ]


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 300, 1000])
async def test_a_deep_single_event_is_400_with_the_reason_and_dead_lettered(
    client, redis_client, levels
):
    raw = b'{"v": 1, "x": ' + nested(levels - 1) + b"}"
    r = await client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "$"
    assert f"nested deeper than {MAX_DEPTH}" in r.json()["detail"]
    ((_, letter),) = redis_client.xrange(KEYS.dlq)
    assert letter[b"raw"] == raw


async def test_a_deep_batch_item_is_rejected_alone_and_the_valid_ones_are_stored(
    client, redis_client
):
    deep = nested(1000)
    raw = b'{"events": [' + orjson.dumps(event(1)) + b", " + deep + b"]}"
    r = await client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][1]["field"] == "$" and "nested deeper" in body["results"][1]["reason"]
    assert [e["event_id"] for e in stored(redis_client)] == ["d1"]
    ((_, letter),) = redis_client.xrange(KEYS.dlq)
    assert letter[b"raw"] == deep


async def test_an_admin_body_nested_deep_is_400(client):
    doc = b'{"key": "deep", "name": ' + nested(300) + b"}"
    r = await client.post(
        "/v1/admin/experiments",
        content=doc,
        headers={**bearer(EXPER), "content-type": "application/json"},
    )
    assert r.status_code == 400 and "nested deeper" in r.json()["detail"]


async def test_the_dlq_listing_survives_deep_and_large_letters(client, redis_client):
    for levels in (300, 1000):
        raw = nested(levels)
        await client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    big = b'{"v": 1, "pad": "' + b"x" * 1_000_000 + b'"}'
    for _ in range(3):
        await client.post("/v1/events", content=big, headers={"content-type": "application/json"})
    r = await client.get("/v1/admin/dlq", params={"limit": "50"}, headers=bearer(ADMIN))
    assert r.status_code == 200
    entries = r.json()["entries"]
    assert len(entries) == 5
    assert len(r.content) < 100_000  # bounded previews, not three 1 MB originals
    assert all(len(e["preview"]) <= 2048 for e in entries)
    assert {e["raw_bytes"] for e in entries} == {600, 2000, len(big)}
    assert entries[-1]["preview"].startswith("[[[[") and entries[-1]["truncated"] is False


async def test_one_letter_is_returned_whole(client, redis_client):
    big = b'{"v": 1, "pad": "' + b"y" * 300_000 + b'"}'
    await client.post("/v1/events", content=big, headers={"content-type": "application/json"})
    await client.post("/v1/events", content=nested(900), headers={"content-type": "text/plain"})
    listing = (await client.get("/v1/admin/dlq", headers=bearer(ADMIN))).json()["entries"]
    for entry, raw in zip(listing, (nested(900), big), strict=True):
        assert entry["truncated"] is (len(raw) > 2048)
        r = await client.get(f"/v1/admin/dlq/{entry['id']}", headers=bearer(ADMIN))
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-disposition"].startswith("attachment")
        assert r.content == raw
    missing = await client.get("/v1/admin/dlq/1-0", headers=bearer(ADMIN))
    assert missing.status_code == 404


@pytest.mark.parametrize("limit", ["0", str(MAX_LIMIT + 1), "500", "-1", "x"])
async def test_the_dlq_limit_is_bounded(client, limit):
    r = await client.get("/v1/admin/dlq", params={"limit": limit}, headers=bearer(ADMIN))
    assert r.status_code == 400 and r.json()["field"] == "limit"
