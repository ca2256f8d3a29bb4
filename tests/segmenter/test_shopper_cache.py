"""The processor's shopper-state cache: one bound over all partitions, and no effect on state."""

from __future__ import annotations

from pathlib import Path

import redis

from segmenter.batch import ShopperCache
from segmenter.features import ShopperState
from tests.support import segmenter as support


def test_many_shoppers_over_many_partitions_stay_within_one_bound() -> None:
    cache = ShopperCache(maxsize=500)
    for n in range(20_000):
        cache.put(n % 8, f"shopper{n}", ShopperState(last_id=f"{n}-0"))
        assert len(cache) <= 500
    newest = cache.view(19_999 % 8)
    assert newest["shopper19999"].last_id == "19999-0" and "shopper0" not in newest
    assert sum(len(cache.view(p)) for p in range(8)) == 500
    cache.forget(3)
    assert len(cache.view(3)) == 0 and len(cache) == 500 - 500 // 8


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
