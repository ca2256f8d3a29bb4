"""The processor's shopper-state cache: one bound over all partitions, and no effect on state."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import redis

from segmenter.batch import ShopperCache, state_bytes
from segmenter.features import ShopperState
from tests.support import segmenter as support


def test_many_shoppers_over_many_partitions_stay_within_one_bound() -> None:
    cache = ShopperCache(maxsize=500)
    for n in range(20_000):
        cache.put(n % 8, f"shopper{n}", ShopperState(last_id=f"{n}-0", scalars={"events": "2"}))
        assert len(cache) <= 500
    newest = cache.view(19_999 % 8)
    assert newest["shopper19999"].last_id == "19999-0" and "shopper0" not in newest
    assert sum(len(cache.view(p)) for p in range(8)) == 500
    cache.forget(3)
    assert len(cache.view(3)) == 0 and len(cache) == 500 - 500 // 8


def test_one_event_shoppers_are_not_kept() -> None:
    """New ids are mostly one-visit ones: their states would fill the cache for hours and
    never be read again. A shopper is kept from its second event on."""
    cache = ShopperCache(maxsize=500)
    for n in range(300):
        cache.put(0, f"bot{n}", ShopperState(last_id=f"{n}-0", scalars={"events": "1"}))
    cache.put(0, "empty", ShopperState(last_id="1-1"))  # an identify alone: no events
    assert len(cache) == 0 and cache.bytes == 0
    cache.put(0, "back", ShopperState(last_id="2-0", scalars={"events": "2"}))
    assert cache.view(0)["back"].last_id == "2-0" and len(cache) == 1


def _long_history(n: int) -> ShopperState:
    """A shopper at its per-shopper caps (50 recent, 200 bought, 50 categories)."""
    return ShopperState(
        last_id=f"{n}-0",
        scalars={"first_ms": "1796597001645", "last_ms": str(1796597001645 + n), "events": "900"},
        recent=[f"sku-{n}-{i}" for i in range(50)],
        bought={
            f"sku-{n}-{i}": (1, 1796597001645 + i, 1796597001645, 1, 0.5 + i, 3) for i in range(200)
        },
        aff={f"cat-{n}-{i}": (1.5 + i, 1796597001645 + i) for i in range(50)},
    )


def test_long_histories_stay_within_the_byte_bound() -> None:
    """A count alone let a cache of long histories hold ~55 KB per shopper: 20,000 of them
    over a gigabyte. The byte bound holds, measured, not only by the cache's own estimate."""
    bound = 4 * 1024 * 1024
    tracemalloc.start()
    try:
        cache = ShopperCache(maxsize=20_000, max_bytes=bound)
        for n in range(1000):
            cache.put(n % 8, f"shopper{n}", _long_history(n))
            assert cache.bytes <= bound
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0 < len(cache) < 1000 and "shopper999" in cache.view(999 % 8)
    assert held <= 1.25 * bound  # the estimate is near what the states really take
    assert cache.bytes == sum(
        state_bytes(cache.view(p)[u]) for p in range(8) for u in cache.view(p)
    )
    for p in range(8):
        cache.forget(p)
    assert cache.bytes == 0 and len(cache) == 0


def test_a_small_cache_leaves_the_same_state_as_a_large_one(redis_factory, tmp_path: Path) -> None:
    """Evicted shoppers are read back from Redis: the cache size never changes a count."""
    entries = support.mixed_stream(1500, seed=5)
    states = []
    for size in (20_000, 7):
        server = redis_factory()
        client = redis.Redis.from_url(server.url)
        support.load(client, entries)
        s = support.settings(server.url, tmp_path / str(size), batch_max_events=50,
                             shopper_cache_size=size)  # fmt: skip
        support.run_until_drained(server.url, s)
        states.append(support.snapshot(client))
        client.close()
    assert states[0] == states[1]
