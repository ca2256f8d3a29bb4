"""Segment lists: every (segment, list variant), wire form, registry, stable ETags."""

from __future__ import annotations

import asyncio

import msgpack
import orjson

from cache_keys import ANON_HSEG, hash_segment
from cache_keys.wire import parse_segment_list
from ops.shop import Shop
from segmenter.connection import connect
from segmenter.lists import build_lists
from segmenter.segments import load_rules
from tests.support import segmenter as support
from tests.support.segmenter import KEYS


def test_lists_for_every_segment_and_variant(redis_url, redis_client, tmp_path) -> None:
    support.load(redis_client, support.mixed_stream(1500, seed=2))
    s = support.settings(redis_url, tmp_path / "a")
    support.run_until_drained(redis_url, s)
    shop = Shop(items=300)
    for n in range(300):
        sku, cat, price = shop.item(n)
        doc = {"category": cat, "price": price, "stock": 0 if n == 0 else 5, "durable": n % 2 == 0}
        redis_client.hset(KEYS.catalog, sku, orjson.dumps(doc))
    exp = {
        "key": "rail",
        "seed": "rail",
        "variations": [{"name": "a"}, {"name": "b", "list_variant": "trending-v2"}],
    }
    redis_client.hset(KEYS.experiments, "rail", orjson.dumps(exp))
    rules = load_rules()

    async def build():
        client = connect(redis_url)
        report = await build_lists(client, KEYS, rules, s, now_ms=1)
        await client.aclose()
        return report

    report = asyncio.run(build())
    assert report.segments == len(rules.all_segments())
    registry = {
        k.decode(): msgpack.unpackb(v) for k, v in redis_client.hgetall(KEYS.list_registry).items()
    }
    name = "returning|grocery|mid"
    entry = registry[hash_segment(name, s.segment_key)]
    assert entry["segment"] == name and set(entry["lists"]) == {"control", "trending-v2"}
    sl = parse_segment_list(
        msgpack.unpackb(
            redis_client.get(KEYS.segment_list(hash_segment(name, s.segment_key), "control"))
        )
    )
    assert 100 <= len(sl.items) <= 300 and sl.etag == entry["lists"]["control"]
    toys = parse_segment_list(
        msgpack.unpackb(
            redis_client.get(
                KEYS.segment_list(hash_segment("returning|toys|mid", s.segment_key), "control")
            )
        )
    )
    share = lambda lst, cat: sum(i.category == cat for i in lst.items[:30])  # noqa: E731
    assert share(sl, "grocery") > share(toys, "grocery") and share(toys, "toys") > share(sl, "toys")
    assert sl.items[0].in_stock and any(i.durable for i in sl.items)
    popular = parse_segment_list(msgpack.unpackb(redis_client.get(KEYS.popular_list)))
    assert popular.hseg == ANON_HSEG and popular.items[0].item == "sku-1"
    assert "sku-0" not in [i.item for i in popular.items[:100]]  # the top seller, out of stock
    asyncio.run(build())
    again = {
        k.decode(): msgpack.unpackb(v) for k, v in redis_client.hgetall(KEYS.list_registry).items()
    }
    assert again == registry  # same inputs, same ETags: edges revalidate with a 304
