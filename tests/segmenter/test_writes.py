"""The two ways of writing a batch (batched on one Redis, per slot for a cluster) agree."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from redis.exceptions import ResponseError

from ops import shop
from segmenter import archive, event
from segmenter.aggregates import Entry, PartitionEffects, PartitionState
from segmenter.archive import ArchiveWriter
from segmenter.batch import Applier
from segmenter.connection import connect
from segmenter.processor import operators_for
from segmenter.schema import COVIS_MAX, tombstone_digest
from segmenter.segments import load_rules
from segmenter.settings import ProcessorSettings, SettingsError
from segmenter.store import Store, redis_reason
from tests.support import segmenter as support
from tests.support.segmenter import KEYS


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
    evs = list(shop.events(60, seed=4, shop=shop.Shop(shoppers=3)))
    entries = [Entry(f"{e.ts}-{i}", event.encode(e), e) for i, e in enumerate(evs)]
    support.load(redis_client, [])
    victim = next(e.user for e in evs[30:] if e.user in {x.user for x in evs[:30]})
    writes: list[str] = []

    async def go() -> list[str]:
        client = connect(redis_url)
        store = Store(client, KEYS, per_slot=per_slot)
        real_write = store.write

        async def spy(*args, **kw):  # type: ignore[no-untyped-def]
            status, conflicts, erased = await real_write(*args, **kw)
            writes.append(status)
            return status, conflicts, erased

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
    key = {"P13N_SEGMENT_KEY": "segment-hash-key-0123456789"}
    assert ProcessorSettings.from_env({**key, "P13N_WRITES": "per-slot"}).writes == "per-slot"
    assert ProcessorSettings.from_env(key).writes == "auto"
    with pytest.raises(SettingsError, match="P13N_WRITES"):
        ProcessorSettings.from_env({**key, "P13N_WRITES": "cluster"})


@pytest.mark.cluster
def test_a_cluster_refuses_batched_writes(cluster_redis_url) -> None:
    with pytest.raises(ValueError, match="per-slot"):
        Store(connect(cluster_redis_url), KEYS, per_slot=False)


@pytest.mark.parametrize("per_slot", [False, True])
def test_an_erasure_racing_a_batch_leaves_nothing_of_the_shopper(
    redis_url, redis_client, per_slot, tmp_path: Path
) -> None:
    """The erasure (tombstone, then the keys) lands after the batch was loaded and before it
    is written: the batch still writes the shopper, then sees the tombstone and undoes it,
    in the store, the archive and the partition state."""
    evs = list(shop.events(40, seed=8, shop=shop.Shop(shoppers=2)))
    entries = [Entry(f"{e.ts}-{i}", event.encode(e), e) for i, e in enumerate(evs)]
    support.load(redis_client, [])
    victim = evs[0].user
    erased = False

    def erase_now(step: str) -> None:  # what the origin's DELETE does first, mid-batch
        nonlocal erased
        if step == "archive" and not erased:
            erased = True
            redis_client.hset(KEYS.tombstones, tombstone_digest(victim), 1)
            redis_client.delete(*KEYS.shopper_keys(victim))

    lookups: list[list[str]] = []

    async def go() -> str:
        client = connect(redis_url)
        store = Store(client, KEYS, erase_now, per_slot=per_slot)
        real_erased = store.erased

        async def spy(users):  # type: ignore[no-untyped-def]
            lookups.append(list(users))
            return await real_erased(users)

        store.erased = spy  # type: ignore[method-assign]
        ops = operators_for(support.settings(redis_url), load_rules())
        lease = await store.acquire(0, "me", 60_000)
        assert lease is not None
        writer = ArchiveWriter(tmp_path / "arc")
        result = await Applier(store, ops, archive=writer, lease_ttl_ms=60_000).apply(
            lease, entries
        )
        await client.aclose()
        return result.status

    assert asyncio.run(go()) == "OK" and erased
    # Batched, the commit script itself looks the tombstones up: no round trip of its own.
    assert len(lookups) == (1 if per_slot else 0)
    assert not any(redis_client.exists(k) for k in KEYS.shopper_keys(victim))
    docs = list(archive.read_partition(tmp_path / "arc", 0))
    assert docs and all(d["user"] != victim for d in docs)
    assert redis_client.hget(KEYS.exposed(0), victim) is None
    assert not [f for f in redis_client.hkeys(KEYS.sessions(0)) if f.startswith(victim.encode())]
    other = next(e.user for e in evs if e.user != victim)
    assert redis_client.exists(KEYS.shopper(other))  # the rest of the batch stands


def test_store_errors_name_no_shopper() -> None:
    # redis-py's own wording for a failed pipeline command, keys included
    exc = ResponseError(
        "Command # 3 (EVALSHA 1a2b 6 p13n:{u:AbCdEfGhIjKlMnOpQrStUv}:f p13n:{u:AbCd}:r) of "
        "pipeline caused error: OOM command not allowed when used memory > 'maxmemory'."
    )
    assert redis_reason(exc) == "OOM command not allowed when used memory > 'maxmemory'."
    assert "AbCd" not in redis_reason(ResponseError("WRONGTYPE at p13n:{u:AbCdEf}:f"))


@pytest.mark.parametrize("per_slot", [False, True])
@pytest.mark.parametrize(("before", "added"), [(10, 40), (30, 60), (45, 1000)])
def test_a_full_covisitation_set_only_adds_weight_to_its_members(
    redis_url, redis_client, per_slot, before, added
) -> None:
    """Up to COVIS_MAX members; once full, only existing members gain weight: the members
    admitted are the first new ones in the batch's order (with room for the whole batch, a
    batch spanning chunks of lookups, and one straddling the cap)."""
    support.load(redis_client, [])
    key = KEYS.covisitation(0, "sku-x")
    old = {f"sku-{i}": 1 for i in range(0, 2 * before, 2)}  # even numbers: members already
    redis_client.zadd(key, old)
    batch = {f"sku-{i}": 3 for i in range(added)}  # every number: half of the early ones known
    expected = {k: float(v) for k, v in old.items()}
    for item, inc in batch.items():
        if item in expected or len(expected) < COVIS_MAX:
            expected[item] = expected.get(item, 0) + inc
    st = PartitionState(offset="1-0", max_ts=1_700_000_000_000)
    fx = PartitionEffects(ack=["1-0"], covis={"sku-x": batch})

    async def go() -> str:
        client = connect(redis_url)
        store = Store(client, KEYS, per_slot=per_slot)
        lease = await store.acquire(0, "me", 60_000)
        assert lease is not None
        status, _, _ = await store.write(lease, "0-0", st, fx, [], lease_ttl_ms=60_000)
        await client.aclose()
        return status

    assert asyncio.run(go()) == "OK"
    got = {m.decode(): s for m, s in redis_client.zrange(key, 0, -1, withscores=True)}
    assert got == expected
    assert len(got) == min(COVIS_MAX, len(old | batch))
