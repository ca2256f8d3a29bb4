"""The snapshot holder: a slow, older load never replaces a newer one."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from origin import snapshot
from tests.support.data import MERCH, bearer
from tests.support.segmenter import KEYS

pytestmark = pytest.mark.anyio


async def test_an_older_refresh_finishing_last_does_not_undo_a_hard_purge(
    client, redis_client, monkeypatch
):
    """The background refresh read Redis before a hard purge and finished after it.

    Under load this reordering is ordinary; installing the older load would bring a
    hard-purged sku back into recommendations until the next refresh.
    """
    holder = client.app.state.p13n.snapshot
    real_load = snapshot.load
    read_done, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def load(*args, **kwargs):
        nonlocal calls
        calls += 1
        snap = await real_load(*args, **kwargs)
        if calls == 1:  # the background refresh: read before the purge, stalled after
            read_done.set()
            await release.wait()
        return snap

    monkeypatch.setattr(snapshot, "load", load)
    older = asyncio.create_task(holder.refresh())
    await asyncio.wait_for(read_done.wait(), 10)
    r = await client.post(
        "/v1/admin/invalidations",
        json={"tags": ["sku:AB-1"], "mode": "hard"},
        headers=bearer(MERCH),
    )
    assert r.status_code == 202
    assert "AB-1" in holder.current.mask
    release.set()
    await asyncio.wait_for(older, 10)
    assert "AB-1" in holder.current.mask


async def test_the_snapshot_carries_the_shops_repeat_share(client, redis_client) -> None:
    """Published by the list build; absent, malformed or out of range: not measured."""
    holder = client.app.state.p13n.snapshot
    for raw, want in ((b"0.42", 0.42), (b"junk", None), (b"1.5", None)):
        redis_client.hset(KEYS.shop_stats, "repeat_share", raw)
        assert (await holder.refresh()).repeat_share == want
    redis_client.delete(KEYS.shop_stats)
    assert (await holder.refresh()).repeat_share is None


async def test_the_snapshot_reads_the_shops_item_purchases_only_when_republished(
    client, redis_client, monkeypatch
) -> None:
    """The items (large) are read when their etag in the shop's stats is new, kept while it
    stays; a malformed value is ignored (buy-again falls back to the segment's list)."""
    holder = client.app.state.p13n.snapshot
    reads = 0
    real = snapshot.load_items

    async def counted(*args, **kwargs):
        nonlocal reads
        reads += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(snapshot, "load_items", counted)
    redis_client.set(KEYS.item_stats, msgpack.packb([["jam", 3, "pantry"], ["tea", 1, "pantry"]]))
    redis_client.hset(KEYS.shop_stats, "items", "e1")
    snap = await holder.refresh()
    assert snap.shop_items.share["jam"] == ("pantry", 0.75) and reads == 1
    assert (await holder.refresh()).shop_items is snap.shop_items and reads == 1
    redis_client.set(KEYS.item_stats, b"junk")
    redis_client.hset(KEYS.shop_stats, "items", "e2")
    assert not (await holder.refresh()).shop_items and reads == 2
    redis_client.delete(KEYS.shop_stats, KEYS.item_stats)
    assert not (await holder.refresh()).shop_items and reads == 2


async def test_the_snapshot_carries_the_shops_recent_weight(client, redis_client) -> None:
    """Learned by the list build; absent, malformed or out of range: frequency alone (0)."""
    holder = client.app.state.p13n.snapshot
    for raw, want in ((b"0.75", 0.75), (b"junk", 0.0), (b"2", 0.0), (b"1.0", 1.0)):
        redis_client.hset(KEYS.shop_stats, "recent_weight", raw)
        assert (await holder.refresh()).recent_weight == want
    redis_client.delete(KEYS.shop_stats)
    assert (await holder.refresh()).recent_weight == 0.0
