"""Redis restarts, lease fencing, delivery limits."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from ops import shop
from origin.app import create_app
from origin.settings import Settings
from segmenter import event
from segmenter.aggregates import Entry
from segmenter.batch import Applier
from segmenter.connection import connect
from segmenter.processor import operators_for
from segmenter.schema import GROUP
from segmenter.segments import load_rules
from segmenter.store import Store
from tests.support import segmenter as support
from tests.support.asgi import app_client
from tests.support.segmenter import KEYS, PARTITIONS
from tests.support.timing import POLL_S


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_aof_redis_crash_mid_run_loses_no_acknowledged_event(redis_factory, tmp_path) -> None:
    server = redis_factory(aof=True)
    evs = list(shop.events(2000, seed=5, start_ms=int(time.time() * 1000) - 60_000))
    batches = [evs[i : i + 50] for i in range(0, len(evs), 50)]
    proc = support.spawn(server.url, tmp_path / "arc")
    settings = Settings(redis_url=server.url, partitions=PARTITIONS, collector_burst=10**6)

    async def post_all() -> int:
        retries = 0
        async with app_client(create_app(settings)) as http:
            for n, batch in enumerate(batches):
                if n == 15:
                    server.kill()  # a crash: no shutdown, only the AOF remains
                if n == 20:
                    server.start()
                body = {"events": [event.to_doc(e) for e in batch]}
                while (r := await http.post("/v1/events", json=body)).status_code != 202:
                    assert r.status_code == 503 and "retry-after" in r.headers
                    retries += 1
                    if n < 20 and retries % 3 == 0:
                        server.start()
                    await asyncio.sleep(POLL_S)  # a client's retry after a 503
        return retries

    try:
        assert asyncio.run(post_all()) > 0
        client = redis.Redis.from_url(server.url)
        support.wait_drained(client, 60, proc)
        meta = [client.hgetall(KEYS.partition_meta(p)) for p in range(PARTITIONS)]
        applied = sum(int(m.get(b"applied", 0)) for m in meta)
        assert applied == len({e.event_id for e in evs})
        assert not any(m.get(b"dead") or m.get(b"late") for m in meta)
        client.close()
    finally:
        support.stop(proc)


@pytest.mark.parametrize("per_slot", [False, True])
def test_a_fenced_process_cannot_commit(redis_url, redis_client, tmp_path, per_slot) -> None:
    evs = list(shop.events(50, seed=2))
    mine = [e for e in evs if True]
    support.load(redis_client, [])

    async def go() -> tuple[str, str]:
        client = connect(redis_url)
        store = Store(client, KEYS, per_slot=per_slot)
        ops = operators_for(support.settings(redis_url), load_rules())
        old = await store.acquire(0, "old", 60_000)
        assert old is not None
        await client.hset(KEYS.partition_meta(0), "lease_until_ms", 0)  # the old lease ran out
        new = await store.acquire(0, "new", 60_000)
        assert new is not None and new.token == old.token + 1
        entries = [Entry(f"{e.ts}-{i}", event.encode(e), e) for i, e in enumerate(mine)]
        stale = await Applier(store, ops, archive=None, lease_ttl_ms=1000).apply(old, entries)
        fresh = await Applier(store, ops, archive=None, lease_ttl_ms=1000).apply(new, entries)
        await client.aclose()
        return stale.status, fresh.status

    assert asyncio.run(go()) == ("FENCED", "OK")
    assert redis_client.hget(KEYS.partition_meta(0), "applied") == str(len(mine)).encode()


def test_entries_over_the_delivery_limit_go_to_the_dlq(redis_url, redis_client, tmp_path) -> None:
    entries = support.mixed_stream(40, seed=1)
    support.load(redis_client, entries)
    stream = KEYS.stream(entries[0][1])
    redis_client.xreadgroup(GROUP, "seg-test", {stream: ">"}, count=1)
    for _ in range(3):  # redelivered three more times without an ack
        redis_client.xreadgroup(GROUP, "seg-test", {stream: "0"}, count=1)
    support.run_until_drained(
        redis_url, support.settings(redis_url, tmp_path / "a", max_deliveries=3), timeout_s=5
    )
    dead = support.dead_letters(redis_client)
    assert [d[b"stream_id"].decode() for d in dead if b"delivered" in d[b"reason"]] == [
        entries[0][0]
    ]
