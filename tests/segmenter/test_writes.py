"""The two ways of writing a batch (batched on one Redis, per slot for a cluster) agree."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from segmenter import event, synthetic
from segmenter.aggregates import Entry
from segmenter.batch import Applier
from segmenter.connection import connect
from segmenter.processor import operators_for
from segmenter.segments import load_rules
from segmenter.settings import ProcessorSettings, SettingsError
from segmenter.store import Store
from tests.segmenter import support
from tests.segmenter.support import KEYS


def test_batched_and_per_slot_writes_leave_identical_state(redis_factory, tmp_path: Path) -> None:
    entries = support.mixed_stream(2500, seed=21)
    states = []
    for writes in ("batched", "per-slot"):
        server = redis_factory()
        client = redis.Redis.from_url(server.url)
        support.load(client, entries)
        s = support.settings(server.url, tmp_path / writes, batch_max_events=40, writes=writes)
        support.run_until_drained(server.url, s)
        states.append((support.snapshot(client), support.dead_letters(client)))
        client.close()
    (batched, batched_dead), (per_slot, per_slot_dead) = states
    assert batched == per_slot
    assert len(batched_dead) == len(per_slot_dead) > 0


@pytest.mark.parametrize("per_slot", [False, True])
def test_a_shopper_changed_behind_the_cache_is_reloaded_and_nothing_half_written(
    redis_url, redis_client, per_slot
) -> None:
    """An erased (or otherwise changed) shopper makes the compare-and-set fail: the batch is
    retried from a fresh load, and the partition commits once."""
    evs = list(synthetic.events(60, seed=4, shop=synthetic.Shop(shoppers=3)))
    entries = [Entry(f"{e.ts}-{i}", event.encode(e), e) for i, e in enumerate(evs)]
    support.load(redis_client, [])
    victim = next(e.user for e in evs[30:] if e.user in {x.user for x in evs[:30]})
    writes: list[str] = []

    async def go() -> list[str]:
        client = connect(redis_url)
        store = Store(client, KEYS, per_slot=per_slot)
        real_write = store.write

        async def spy(*args, **kw):  # type: ignore[no-untyped-def]
            status, conflicts = await real_write(*args, **kw)
            writes.append(status)
            return status, conflicts

        store.write = spy  # type: ignore[method-assign]
        ops = operators_for(support.settings(redis_url), load_rules())
        lease = await store.acquire(0, "me", 60_000)
        assert lease is not None
        applier = Applier(store, ops, archive=None, lease_ttl_ms=60_000)
        first = await applier.apply(lease, entries[:30])
        await client.delete(*KEYS.shopper_keys(victim))  # behind the applier's cache
        second = await applier.apply(lease, entries[30:])
        await client.aclose()
        return [first.status, second.status]

    assert asyncio.run(go()) == ["OK", "OK"]
    assert writes == ["OK", "CONFLICT", "OK"]
    meta = redis_client.hgetall(KEYS.partition_meta(0))
    assert int(meta[b"applied"]) + int(meta.get(b"duplicate", 0)) == len(evs)
    # The victim now holds exactly the events of the second batch.
    later = [e for e in evs[30:] if e.user == victim]
    assert int(redis_client.hget(KEYS.shopper(victim), "events") or 0) == len(later)


def test_writes_setting_is_checked() -> None:
    assert ProcessorSettings.from_env({"P13N_WRITES": "per-slot"}).writes == "per-slot"
    assert ProcessorSettings.from_env({}).writes == "auto"
    with pytest.raises(SettingsError, match="P13N_WRITES"):
        ProcessorSettings.from_env({"P13N_WRITES": "cluster"})


@pytest.mark.cluster
def test_a_cluster_refuses_batched_writes(cluster_redis_url) -> None:
    with pytest.raises(ValueError, match="per-slot"):
        Store(connect(cluster_redis_url), KEYS, per_slot=False)
