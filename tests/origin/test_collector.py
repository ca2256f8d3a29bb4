"""The collector: single events and batches, reasons, DLQ with original bytes, limits, 503."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import orjson
import pytest
import redis

from origin import collector
from origin.app import create_app
from origin.collector import RateLimiter
from origin.settings import Settings
from segmenter import event
from segmenter.event_jsonschema import MAX_BATCH
from segmenter.registry import VERSIONS
from segmenter.schema import Keys, partition_of, tombstone_digest
from tests.support.asgi import app_client

KEYS = Keys()
NOW_TS = 1_700_000_000_000
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


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
        ev(3, v=99),
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


def test_rate_limiter_forgets_buckets_that_refilled() -> None:
    # 10 events/s, burst 20: a bucket is full again 2 s after its last take, the same as
    # no bucket at all; 20,000 distinct shoppers at 1,000 a second leave at most 2 s' worth.
    now = [0.0]
    lim = RateLimiter(10, 20, clock=lambda: now[0])
    for n in range(20_000):
        now[0] = n / 1000
        assert lim.take(f"site|shopper:{n}", 1) == 0
        assert len(lim) <= 2_001
    assert lim.take("site|shopper:19999", 19) == 0 and lim.take("site|shopper:19999", 1) > 0
    now[0] += 2.0  # refilled: forgotten, and a fresh bucket is what it gets
    assert lim.take("site|shopper:19999", 20) == 0


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
    defs = r.json()["$defs"]
    assert defs["event"]["oneOf"] == [{"$ref": f"#/$defs/v{v}"} for v in VERSIONS]
    for v, spec in VERSIONS.items():
        schema = defs[f"v{v}"]
        assert set(schema["properties"]) == set(spec.names)
        assert schema["properties"]["v"] == {
            "const": v,
            "description": schema["properties"]["v"]["description"],
        }
        # a version's types: the ones before it, then its own additions (widening only)
        types = schema["properties"]["type"]["enum"]
        assert types == list(event.EVENT_TYPES)[: len(types)]
        assert schema["additionalProperties"] is False
        assert {"traceparent", "bot"} <= set(schema["properties"]) - set(schema["required"])
    assert set(defs["v2"]["properties"]) - set(defs["v1"]["properties"]) == {"position"}
    assert "identify" in defs["v3"]["properties"]["type"]["enum"]
    assert "identify" not in defs["v2"]["properties"]["type"]["enum"]
    assert set(defs[f"v{max(VERSIONS)}"]["properties"]) == set(event.FIELDS)


SHOPPER = "kY4T6e8nghYq15sKo888hy"


def cookie_header(**cookies: str) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "optout",
    [
        {"Sec-GPC": "1"},
        cookie_header(p13n_optout="1"),
        cookie_header(p13n_optout="yes"),
        cookie_header(p13n_optout="False ", p13n_sid=SHOPPER) | {"Sec-GPC": "1"},
        cookie_header(p13n_optout="true", p13n_sid=SHOPPER),
    ],
)
async def test_opted_out_requests_store_nothing_even_naming_a_user(
    redis_url, redis_client, optout
) -> None:
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        one = await http.post("/v1/events", json=ev(1, user=SHOPPER), headers=optout)
        batch = await http.post(
            "/v1/events", json={"events": [ev(2, user=SHOPPER), ev(3, v=99)]}, headers=optout
        )
        junk = await http.post(
            "/v1/events", content=b'{"v": 1, "user": "' + SHOPPER.encode(), headers=optout
        )
    for r in (one, batch, junk):
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": 0, "rejected": 0, "opted_out": True, "results": []}
    assert entries(redis_client) == []
    assert redis_client.xlen(KEYS.dlq) == 0


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["0", "no", "false", ""])
async def test_an_explicit_no_in_the_optout_cookie_is_not_an_optout(
    redis_url, redis_client, value
) -> None:
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        r = await http.post("/v1/events", json=ev(1), headers=cookie_header(p13n_optout=value))
    assert r.status_code == 202 and r.json()["accepted"] == 1
    assert len(entries(redis_client)) == 1


@pytest.mark.anyio
async def test_rate_limit_comes_before_any_dead_letter(redis_url, redis_client) -> None:
    s = replace(Settings(redis_url=redis_url), collector_rate_per_s=0, collector_burst=2)
    async with app_client(create_app(s)) as http:
        first = await http.post("/v1/events", content=b"{junk")
        second = await http.post("/v1/events", content=b"{junk")
        third = await http.post("/v1/events", content=b"{junk")
        batch = await http.post("/v1/events", json={"events": [ev(1, v=99)]})
    assert [r.status_code for r in (first, second)] == [400, 400]
    assert third.status_code == 429 and batch.status_code == 429
    assert redis_client.xlen(KEYS.dlq) == 2


@pytest.mark.anyio
async def test_dead_letter_stream_is_capped(redis_url, redis_client, monkeypatch) -> None:
    monkeypatch.setattr(collector, "DLQ_MAXLEN", 10)  # the cap, not behaviour, made small
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        for n in range(3):
            batch = [ev(100 * n + i, v=99) for i in range(MAX_BATCH)]
            r = await http.post("/v1/events", json={"events": batch})
            assert r.json()["rejected"] == MAX_BATCH
    # approximate trimming drops whole stream nodes (100 entries by default)
    assert 10 <= redis_client.xlen(KEYS.dlq) < 3 * MAX_BATCH


@pytest.mark.anyio
async def test_a_batch_item_is_dead_lettered_with_its_own_bytes(redis_url, redis_client) -> None:
    good = orjson.dumps({k: v for k, v in ev(1).items() if k != "user"})
    bad = b'{ "v":9,  "event_id":"e2", "type":"view", "ts":1700000000000, "item":"\\u0053KU" }'
    body = b'{"events" : [' + good + b" ,\n  " + bad + b"  ]}"
    headers = {"content-type": "application/json", "traceparent": TRACE}
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        r = await http.post("/v1/events", content=body, headers=headers | cookie_header(
            p13n_sid=SHOPPER))  # fmt: skip
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1)
    ((_, letter),) = redis_client.xrange(KEYS.dlq)
    assert letter[b"raw"] == bad  # as sent: not re-serialized, no cookie user or traceparent
    assert letter[b"user"] == SHOPPER.encode()  # who it was for, for erasure and requeue
    assert entries(redis_client)[0]["user"] == SHOPPER


@pytest.mark.anyio
async def test_an_erased_shoppers_bad_events_are_not_dead_lettered(redis_url, redis_client) -> None:
    redis_client.hset(KEYS.tombstones, tombstone_digest("u1"), 1)  # u1 was erased
    batch = [ev(1, qty="two"), ev(2, qty="two")]  # invalid, for u1 and u2
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        r = await http.post("/v1/events", json={"events": batch})
    assert r.status_code == 202 and r.json()["rejected"] == 2  # the sender still learns why
    users = [f[b"user"] for _, f in redis_client.xrange(KEYS.dlq)]
    assert users == [b"u2"]


@pytest.mark.anyio
async def test_v1_and_v2_events_are_accepted_side_by_side(redis_url, redis_client) -> None:
    batch = [ev(1), ev(2, v=2, position=7), ev(3, position=1), ev(4, v=99)]
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        r = await http.post("/v1/events", json={"events": batch})
        metrics = (await http.get("/metrics")).text
    assert [x["status"] for x in r.json()["results"]] == [
        "accepted", "accepted", "rejected", "rejected"
    ]  # fmt: skip
    assert r.json()["results"][2]["field"] == "position"  # not part of v1
    stored = sorted(entries(redis_client), key=lambda d: str(d["event_id"]))
    assert [(d["event_id"], d["v"], d.get("position")) for d in stored] == [
        ("e1", 1, None), ("e2", 2, 7)
    ]  # fmt: skip
    for line in ('p13n_origin_event_versions_total{outcome="accepted",v="1"} 1.0',
                 'p13n_origin_event_versions_total{outcome="accepted",v="2"} 1.0',
                 'p13n_origin_event_versions_total{outcome="rejected",v="1"} 1.0',
                 'p13n_origin_event_versions_total{outcome="rejected",v="unknown"} 1.0',
                 'p13n_origin_events_rejected_total{field="position"} 1.0'):  # fmt: skip
        assert line in metrics
