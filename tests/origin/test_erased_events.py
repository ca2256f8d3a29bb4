"""Erasure holds for new events (issue 16, item 3): after ``DELETE /v1/admin/shoppers/{id}``
the collector refuses the shopper's events before anything is written, with one tombstone
lookup per batch."""

from __future__ import annotations

import pytest
import redis

from cache_keys import new_shopper_id
from origin.app import create_app
from origin.settings import Settings
from tests.support.asgi import app_client
from tests.support.data import ADMIN, KEYS, NOW_MS, bearer

pytestmark = pytest.mark.anyio


def ev(i: int, user: str) -> dict[str, object]:
    return {"v": 1, "event_id": f"x{i}", "type": "view", "user": user, "item": "s", "ts": NOW_MS}


def written(r: redis.Redis) -> int:
    return sum(r.xlen(KEYS.stream(p)) for p in range(2)) + r.xlen(KEYS.dlq)


async def test_an_erased_shoppers_new_events_are_refused_and_nothing_is_written(
    client, redis_client
):
    victim, other = new_shopper_id(), new_shopper_id()
    erased = await client.delete(f"/v1/admin/shoppers/{victim}", headers=bearer(ADMIN))
    assert erased.status_code == 200
    single = await client.post("/v1/events", json=ev(1, victim))
    assert single.status_code == 400 and single.json()["field"] == "user"
    bad = {**ev(2, victim), "qty": "two"}  # an invalid one is not dead-lettered either
    batch = {"events": [ev(3, victim), ev(4, other), bad]}
    r = await client.post("/v1/events", json=batch)
    assert r.status_code == 202
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 2)
    assert [x["status"] for x in r.json()["results"]] == ["rejected", "accepted", "rejected"]
    assert written(redis_client) == 1  # only the other shopper's event
    streams = [redis_client.xrange(KEYS.stream(p)) for p in range(2)]
    assert not any(victim.encode() in f[b"e"] for s in streams for _, f in s)


async def test_one_tombstone_lookup_per_batch(single_redis_url, tmp_path):
    r = redis.Redis.from_url(single_redis_url)
    settings = Settings(redis_url=single_redis_url, partitions=2, archive_dir=str(tmp_path))
    batch = {"events": [ev(i, new_shopper_id()) for i in range(100)]}
    async with app_client(create_app(settings)) as http:
        r.config_resetstat()
        answer = await http.post("/v1/events", json=batch)
    assert answer.status_code == 202 and answer.json()["accepted"] == 100
    stats = r.info("commandstats")
    r.close()
    assert stats["cmdstat_hmget"]["calls"] == 1
