"""The collector: single events and batches, reasons, DLQ with original bytes, limits, 503."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest
import redis

from origin.app import create_app
from origin.collector import RateLimiter
from origin.settings import Settings
from segmenter import event
from segmenter.event_jsonschema import MAX_BATCH
from segmenter.schema import Keys, partition_of
from tests.asgi import app_client

KEYS = Keys()
NOW_TS = 1_700_000_000_000


def ev(i: int = 1, **kw: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "v": 1,
        "event_id": f"e{i}",
        "type": "view",
        "user": f"u{i % 7}",
        "item": f"sku-{i}",
        "ts": NOW_TS,
        "session": "s1",
    }
    doc.update(kw)
    return doc


def entries(client: redis.Redis) -> list[dict[str, object]]:
    out = []
    for p in range(8):
        for _, f in client.xrange(KEYS.stream(p)):
            out.append(msgpack.unpackb(f[b"e"]))
    return out


@pytest.mark.anyio
async def test_single_event_lands_on_its_shoppers_partition(redis_url, redis_client) -> None:
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        r = await http.post("/v1/events", json=ev(3))
    assert r.status_code == 202 and r.json()["accepted"] == 1
    p = partition_of("u3", 8)
    ((_, fields),) = redis_client.xrange(KEYS.stream(p))
    assert event.decode(fields[b"e"]) == event.validate(ev(3))


@pytest.mark.anyio
async def test_batch_answers_per_event_and_dead_letters_the_bad_ones(
    redis_url, redis_client
) -> None:
    batch = [
        ev(1),
        ev(2, qty="two"),
        ev(3, v=2),
        ev(4, item="x" * 65),
        ev(5, ts=4_000_000_000_000),
        ev(6, extra=1),
        ev(7, type="teleport"),
        ev(8),
    ]
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        r = await http.post("/v1/events", json={"events": batch})
        metrics = (await http.get("/metrics")).text
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 6)
    assert 'p13n_origin_events_total{outcome="rejected"} 6.0' in metrics
    assert 'p13n_origin_events_rejected_total{field="qty"} 1.0' in metrics
    fields = [x.get("field") for x in body["results"]]
    assert fields == [None, "qty", "v", "item", "ts", "$", "type", None]
    # An unknown field is named in the reason, never in the field (a metric label).
    assert body["results"][5]["reason"] == "$: unknown field 'extra'"
    assert len(entries(redis_client)) == 2
    dead = [f for _, f in redis_client.xrange(KEYS.dlq)]
    assert [d[b"field"].decode() for d in dead] == ["qty", "v", "item", "ts", "$", "type"]
    assert all(d[b"source"] == b"collector" and d[b"raw"].startswith(b"{") for d in dead)
    assert dead[0][b"user"] == b"u2"


@pytest.mark.anyio
async def test_single_bad_event_is_400_and_malformed_json_keeps_its_bytes(
    redis_url, redis_client
) -> None:
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        bad = await http.post("/v1/events", json=ev(1, price=-1))
        junk = await http.post(
            "/v1/events",
            content=b'{"v": 1, "event_id": ',
            headers={"content-type": "application/json"},
        )
    assert bad.status_code == 400 and bad.json()["field"] == "price"
    assert bad.headers["content-type"] == "application/problem+json"
    assert junk.status_code == 400
    raws = [f[b"raw"] for _, f in redis_client.xrange(KEYS.dlq)]
    assert raws[-1] == b'{"v": 1, "event_id": '
    assert entries(redis_client) == []


@pytest.mark.anyio
async def test_size_limits(redis_url) -> None:
    app = create_app(Settings(redis_url=redis_url))
    async with app_client(app) as http:
        many = await http.post("/v1/events", json={"events": [ev(i) for i in range(MAX_BATCH + 1)]})
        huge = await http.post("/v1/events", content=b"[" + b" " * (1024 * 1024) + b"]")
    assert many.status_code == 413 and huge.status_code == 413


@pytest.mark.anyio
async def test_site_key_and_rate_limit(redis_url) -> None:
    s = replace(
        Settings(redis_url=redis_url),
        collector_site_keys=frozenset({"pk_live_1"}),
        collector_rate_per_s=0,
        collector_burst=3,
    )
    async with app_client(create_app(s)) as http:
        assert (await http.post("/v1/events", json=ev(1))).status_code == 403
        ok = await http.post("/v1/events?site_key=pk_live_1", json={"events": [ev(1), ev(2)]})
        assert ok.status_code == 202
        limited = await http.post(
            "/v1/events", json={"events": [ev(3), ev(4)]}, headers={"x-p13n-site-key": "pk_live_1"}
        )
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_rate_limiter_refills_with_its_clock() -> None:
    now = [0.0]
    lim = RateLimiter(10, 20, clock=lambda: now[0])
    assert lim.take("c", 20) == 0 and lim.take("c", 5) == pytest.approx(0.5)
    now[0] = 0.5
    assert lim.take("c", 5) == 0 and lim.take("other", 20) == 0


@pytest.mark.anyio
async def test_redis_down_is_503_with_retry_after(redis_factory) -> None:
    server = redis_factory()
    url = server.url
    server.stop()
    async with app_client(create_app(Settings(redis_url=url))) as http:
        r = await http.post("/v1/events", json={"events": [ev(1), ev(2)]})
    assert r.status_code == 503 and "retry-after" in r.headers


@pytest.mark.anyio
async def test_schema_is_published_and_matches_the_validator() -> None:
    async with app_client(create_app(Settings())) as http:
        r = await http.get("/v1/schemas/events")
        again = await http.get("/v1/schemas/events", headers={"if-none-match": r.headers["etag"]})
    assert r.status_code == 200 and again.status_code == 304
    schema = r.json()["$defs"]["event"]
    assert set(schema["properties"]) == set(event.FIELDS)
    assert schema["properties"]["type"]["enum"] == list(event.EVENT_TYPES)
    assert schema["additionalProperties"] is False
    assert {"traceparent", "bot"} <= set(schema["properties"]) - set(schema["required"])
