"""Segment lists: every (segment, list variant), wire form, registry, stable ETags."""

from __future__ import annotations

import asyncio

import msgpack
import orjson

from cache_keys import ANON_HSEG, hash_segment, wire
from cache_keys.wire import parse_segment_list
from ops.shop import Shop
from segmenter.connection import connect
from segmenter.lists import ShopStats, build_lists, rank, segment_behaviour, shrink
from segmenter.recency import MIN_SHOPPERS
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


def test_shrink_moves_from_the_prior_to_the_segments_own_behaviour() -> None:
    prior = {"a": 3.0, "b": 1.0}
    small = shrink({"b": 10.0}, prior, strength=500.0)  # two purchases' worth: the prior leads
    large = shrink({"b": 5000.0, "c": 2000.0}, prior, strength=500.0)
    assert small["a"] > small["b"] > 0
    assert large["b"] > large["c"] > large["a"]
    assert abs(sum(large.values()) - 1.0) < 1e-9  # shares of one total


def test_rank_follows_what_a_large_segment_buys_and_keeps_the_prior_for_a_small_one() -> None:
    catalog = {f"s{i}": {"category": "x", "price": 1.0, "stock": 5} for i in range(5)}
    popularity = {"s0": 50.0, "s1": 40.0, "s2": 30.0, "s3": 20.0, "s4": 10.0}
    band = (float("-inf"), float("inf"))
    plain = [li.item for li in rank(popularity, catalog, "", band, 5)]
    small = [li.item for li in rank(popularity, catalog, "", band, 5, behaviour={"s4": 5.0})]
    large = [li.item for li in rank(popularity, catalog, "", band, 5, behaviour={"s4": 5000.0})]
    assert plain == small == ["s0", "s1", "s2", "s3", "s4"]
    assert large[0] == "s4" and large[1:] == ["s0", "s1", "s2", "s3"]


def test_segment_lists_come_from_their_own_shoppers(redis_url, redis_client, tmp_path) -> None:
    s = support.settings(redis_url, tmp_path / "b")
    rules = load_rules()
    tea, cheese = "returning|grocery|mid", "returning|toys|mid"
    for n in range(40):
        sku = f"sku-{n}"
        doc = {"category": "grocery", "price": 5.0, "stock": 5, "durable": False}
        redis_client.hset(KEYS.catalog, sku, orjson.dumps(doc))
    # 300 shoppers per segment, each buying their segment's item 4 times and viewing another
    for n in range(600):
        sid = f"shopper{n:06d}xxxxxxxxxx"
        name, item, seen = (tea, "sku-37", "sku-38") if n % 2 else (cheese, "sku-39", "sku-36")
        redis_client.hset(KEYS.shopper(sid), mapping={"seg": name, "hseg": "x"})
        redis_client.hset(KEYS.bought(sid), item, f"4|{n}|1|4|2.5|4")
        redis_client.lpush(KEYS.recent(sid), seen)

    async def build():
        client = connect(redis_url)
        behaviour = await segment_behaviour(client, KEYS)
        await build_lists(client, KEYS, rules, s, now_ms=1)
        await client.aclose()
        return behaviour

    behaviour = asyncio.run(build())
    assert behaviour[tea] == {"sku-37": 300 * 4 * 5.0, "sku-38": 300 * 1.0}

    def top(name: str) -> list[str]:
        raw = redis_client.get(KEYS.segment_list(hash_segment(name, s.segment_key), "control"))
        return [li.item for li in parse_segment_list(msgpack.unpackb(raw)).items[:2]]

    assert top(tea) == ["sku-37", "sku-38"]
    assert top(cheese) == ["sku-39", "sku-36"]
    # no shoppers of its own: the prior (the catalog fill, in id order)
    other = next(n for n in rules.all_segments() if n not in (tea, cheese))
    assert top(other)[0] not in {"sku-36", "sku-37", "sku-38", "sku-39"}


def test_lists_carry_the_catalogs_labels_cut_to_fit_the_wire() -> None:
    catalog = {
        "milk": {"category": "dairy", "price": 1.0, "name": "Organic milk " * 20,
                 "image_url": "https://cdn.shop.example/milk.jpg"},
        "kettle": {"category": "home", "price": 30.0,
                   "image_url": "https://x.example/" + "k" * 600},
        "bread": {"category": "bakery", "price": 2.0},
    }  # fmt: skip
    got = {
        li.item: li for li in rank({"milk": 3, "kettle": 2, "bread": 1}, catalog, "", (0, 99), 3)
    }
    assert got["milk"].name == wire.fit_name("Organic milk " * 20)
    assert len(got["milk"].name) == wire.MAX_ITEM_NAME and got["milk"].name.endswith("…")
    assert got["milk"].image_url == "https://cdn.shop.example/milk.jpg"
    assert got["kettle"].image_url == "" and got["kettle"].name == ""  # too long: left out
    assert (got["bread"].name, got["bread"].image_url) == ("", "")
    doc = wire.segment_list_to_json(
        wire.SegmentList(ANON_HSEG, "control", "e", 0, tuple(got.values()))
    )
    assert wire.parse_segment_list(doc).items == tuple(got.values())
    assert "name" not in doc["items"][2] and "image_url" not in doc["items"][2]


def test_the_build_publishes_the_shops_repeat_share(redis_url, redis_client, tmp_path) -> None:
    """Every read shopper counts, segment or not: 3 purchases of one item are 2 repeats."""
    s = support.settings(redis_url, tmp_path / "b")
    redis_client.hset(KEYS.shopper("a" * 22), mapping={"seg": "returning|grocery|mid"})
    redis_client.hset(KEYS.bought("a" * 22), mapping={"milk": "3|9|1|3|2.0|3", "tea": "1|9"})
    redis_client.hset(KEYS.shopper("b" * 22), mapping={"events": "4"})  # no segment yet
    redis_client.hset(KEYS.bought("b" * 22), mapping={"soap": "2|9|9|1|1.0|1", "bad": "x|y"})

    async def build():
        client = connect(redis_url)
        await build_lists(client, KEYS, load_rules(), s, now_ms=1)
        await client.aclose()

    asyncio.run(build())
    stats = redis_client.hgetall(KEYS.shop_stats)
    # purchases: milk 3, tea 1 (the older form), soap 1, bad 1 (unreadable: counted once)
    items = msgpack.unpackb(redis_client.get(KEYS.item_stats))
    assert items == [["milk", 3, ""], ["bad", 1, ""], ["soap", 1, ""], ["tea", 1, ""]]
    assert stats == {b"purchases": b"6", b"repeat_share": repr(round(2 / 6, 6)).encode(),
                     b"items": stats[b"items"]}  # fmt: skip
    assert stats[b"items"].startswith(b"l1-")
    assert ShopStats().to_redis() == {"purchases": "0"}  # nothing bought: no share claimed


def test_the_build_publishes_the_recent_weight(redis_url, redis_client, tmp_path) -> None:
    """Shoppers whose last basket repeats what they bought lately, not what they bought most:
    the build learns to follow recent baskets (``segmenter.recency``)."""
    s = support.settings(redis_url, tmp_path / "c")

    def pif(baskets: range, at: int) -> str:  # the decayed frequency as of basket ``at``
        return repr(sum(0.9 ** (at - b) for b in baskets))

    for n in range(MIN_SHOPPERS + 10):
        user = f"{n:022d}"
        # 20 baskets: "old-*" in the first eight, "new-*" in 16-19 and again in the last
        old = {f"old-{i}": f"8|9|1|8|{pif(range(1, 9), 8)}|8" for i in range(20 + n % 3)}
        new = {f"new-{i}": f"5|9|1|5|{pif(range(16, 21), 20)}|20" for i in range(5)}
        redis_client.hset(KEYS.shopper(user), mapping={"seg": "returning|grocery|mid",
                                                        "baskets": "20"})  # fmt: skip
        redis_client.hset(KEYS.bought(user), mapping={**old, **new})

    async def build():
        client = connect(redis_url)
        await build_lists(client, KEYS, load_rules(), s, now_ms=1)
        await client.aclose()

    asyncio.run(build())
    # the smallest weight that ranks the five new items above the old ones: 0.5 does not
    assert redis_client.hget(KEYS.shop_stats, "recent_weight") == b"0.75"
