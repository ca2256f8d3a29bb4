"""Segment lists: per (segment, list variant) a ranked list of candidates, versioned by ETag.

    popularity (merged over partitions, event-time window) + catalog flags
      -> for each segment, a prior: base score, + boost for the segment's top category and
         price band
      -> what the segment's own shoppers buy and view (their ``:bought`` and ``:recent``,
         read for up to ``SEGMENT_SAMPLE_MAX`` shoppers), shrunk toward that prior:
         (own weight of the item + k * prior share) / (segment's total weight + k)
      -> top ``list_size`` items, with the catalog's name and image (names cut to
         ``MAX_ITEM_NAME``) -> msgpack of the wire form, registry entry {segment, lists}

A segment with few shoppers gets the prior (global popularity with its category and price
boosts); a large one what its shoppers actually do. The same read measures the shop's repeat
share (``ShopStats``: the share of purchases that repeat an item the same shopper bought
before), published in ``Keys.shop_stats`` with the lists: the origin's rails mix "due again"
and "goes with what you have" by it (``origin.recommend.ranking``); and the shop's purchases
of each of its ``ITEM_STATS_MAX`` best sellers with their categories (``Keys.item_stats``, its
etag in the stats): buy-again's chance of a fresh pick is an item's share of its category
there (``origin.recommend.explore``), which a 200-item list cannot give most of a large
catalog's items. Weights as popularity's: a purchase 5 (per purchase kept), a recent view 1.
The same read rebuilds each shopper's state before their last basket and learns how much the
shop's repurchases follow recent baskets rather than all-time frequency (``recent_weight``
in the stats: ``segmenter.recency``).

List variants come from the experiments the origin stores (``variations[].list_variant``,
usually set by a named strategy: ``origin.strategies`` and docs/EXPERIMENTS.md say which
variant does what); ``control`` always exists. A variant whose name starts with ``trending``
ranks by the last ``TRENDING_BUCKETS`` popularity buckets; every other variant ranks like
``control`` (all kept buckets). An unchanged list keeps its ETag, so edges revalidate with a
304.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack
import orjson
import redis.asyncio as aioredis

from cache_keys import ANON_HSEG, hash_segment
from cache_keys.wire import ListItem, SegmentList, fit_image_url, fit_name, segment_list_to_json
from segmenter.recency import RecencyLearner
from segmenter.schema import POPULARITY_BUCKET_S, POPULARITY_BUCKETS, Keys
from segmenter.segments import SegmentRules
from segmenter.settings import ProcessorSettings

__all__ = [
    "ListReport",
    "ShopStats",
    "build_lists",
    "build_lists_locked",
    "rank",
    "segment_behaviour",
    "shrink",
]

log = logging.getLogger("p13n.segmenter")
TRENDING_BUCKETS = 6
MIN_LIST = 100
CATEGORY_BOOST = 0.5
PRICE_BOOST = 0.2
LOCK_TTL_MS = 60_000
# Shoppers read per build for segment behaviour (a SCAN, pipelined in chunks), and the prior's
# weight: like 100 purchases (5 each) by the segment's shoppers.
SEGMENT_SAMPLE_MAX = 20_000
SEGMENT_PRIOR_WEIGHT = 500.0
SCAN_CHUNK = 500
PURCHASE_WEIGHT, VIEW_WEIGHT, RECENT_READ = 5.0, 1.0, 10
# Items whose purchases the build publishes (best sellers first): about 0.5 MB of msgpack,
# read by each origin worker only when its etag changes.
ITEM_STATS_MAX = 20_000


@dataclass(frozen=True, slots=True)
class ListReport:
    segments: int
    lists: int
    items: int


def _etag(items: list[Any]) -> str:
    return "l1-" + hashlib.sha256(msgpack.packb(items)).hexdigest()[:20]


def _band(rules: SegmentRules, name: str) -> tuple[str, float, float]:
    """The segment's top category ("" when none) and price band [lo, hi)."""
    values = name.split("|")
    cat_dim = next((i for i, d in enumerate(rules.dimensions) if d.feature == "top_category"), None)
    category = values[cat_dim] if cat_dim is not None else ""
    if cat_dim is not None and category == rules.dimensions[cat_dim].otherwise:
        category = ""
    lo, hi = float("-inf"), float("inf")
    for i, d in enumerate(rules.dimensions):
        prev = float("-inf")
        for r in d.rules:
            bounds = [b for b in r.bounds if b[0] == "avg_price"]
            if bounds and r.value == values[i]:
                lo, hi = max(prev, bounds[0][1]), bounds[0][2]
            prev = bounds[0][2] if bounds else prev
        if (
            d.rules
            and values[i] == d.otherwise
            and any(b[0] == "avg_price" for r in d.rules for b in r.bounds)
        ):
            lo = prev
    return category, lo, hi


def shrink(own: Mapping[str, float], prior: Mapping[str, float],
           strength: float = SEGMENT_PRIOR_WEIGHT) -> dict[str, float]:  # fmt: skip
    """Each item's share of the segment's own weight, shrunk toward its share of the prior:
    ``(own[i] + strength * prior[i] / sum(prior)) / (sum(own) + strength)`` (pure)."""
    own_total, prior_total = sum(own.values()), sum(prior.values()) or 1.0
    denom = own_total + strength
    if denom <= 0:
        return {}
    return {i: (own.get(i, 0.0) + strength * prior.get(i, 0.0) / prior_total) / denom
            for i in {*prior, *own}}  # fmt: skip


def rank(
    popularity: Mapping[str, float], catalog: Mapping[str, Mapping[str, Any]], category: str,
    price_band: tuple[float, float], size: int, *, behaviour: Mapping[str, float] | None = None,
) -> list[ListItem]:  # fmt: skip
    """The top ``size`` candidates for one segment (pure): the prior (popularity and the
    segment's boosts), shrunk toward by what the segment's shoppers did (``behaviour``)."""
    top = max(popularity.values(), default=0.0) or 1.0
    pool = dict(popularity)
    if len(pool) < MIN_LIST:  # thin traffic: fill from the catalog
        for sku in sorted(catalog)[: size - len(pool)]:
            pool.setdefault(sku, 0.0)
    prior: dict[str, float] = {}
    for item, pop in pool.items():
        info = catalog.get(item, {})
        cat, price = str(info.get("category", "")), float(info.get("price", 0.0))
        score = pop / top
        score += CATEGORY_BOOST if category and cat == category else 0.0
        score += PRICE_BOOST if price_band[0] <= price < price_band[1] else 0.0
        prior[item] = score
    if behaviour:
        shares = shrink(behaviour, prior)
        best = max(shares.values(), default=0.0) or 1.0
        prior = {i: v / best for i, v in shares.items()}
    scored = []
    for item, score in prior.items():
        info = catalog.get(item, {})
        cat, price = str(info.get("category", "")), float(info.get("price", 0.0))
        in_stock = int(info.get("stock", 1)) > 0
        scored.append((round(score - (0 if in_stock else 10), 6), item, cat, price, in_stock,
                       bool(info.get("durable", False))))  # fmt: skip
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [_labelled(ListItem(i, max(s, 0.0), c, p, st, d), catalog.get(i))
            for s, i, c, p, st, d in scored[:size]]  # fmt: skip


def _labelled(li: ListItem, info: Mapping[str, Any] | None) -> ListItem:
    """The candidate with the catalog's name and image, cut to fit the wire
    (``cache_keys.wire.labels``): lists stay small."""
    if not info or not (info.get("name") or info.get("image_url")):
        return li
    name, image = fit_name(str(info.get("name", ""))), fit_image_url(str(info.get("image_url", "")))
    return replace(li, name=name, image_url=image)


@dataclass(slots=True)
class ShopStats:
    """The shop's repeat behaviour over the shoppers the build read (``repeat_share``)."""

    purchases: int = 0
    repeats: int = 0  # purchases of an item the same shopper had bought before
    items: Counter[str] = field(default_factory=Counter)  # purchases per item
    recency: RecencyLearner = field(default_factory=RecencyLearner)
    recent_weight: float | None = None  # ``recency.weight()``, once learned

    def add(self, bought: Mapping[str, int]) -> None:
        """One shopper's purchases of each of their items."""
        for item, n in bought.items():
            self.purchases += n
            self.repeats += max(0, n - 1)
            self.items[item] += n

    def item_rows(self, catalog: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
        """``[item, purchases, category]`` of the ``ITEM_STATS_MAX`` best sellers."""
        top = sorted(self.items.items(), key=lambda kv: (-kv[1], kv[0]))[:ITEM_STATS_MAX]
        return [[i, n, str(catalog.get(i, {}).get("category", ""))] for i, n in top]

    def to_redis(self, items_etag: str = "") -> dict[str, str]:
        """The ``Keys.shop_stats`` hash (no ``repeat_share`` before any purchase)."""
        out = {"purchases": str(self.purchases)}
        if self.purchases:
            out["repeat_share"] = repr(round(self.repeats / self.purchases, 6))
        if items_etag:
            out["items"] = items_etag
        if self.recent_weight is not None:
            out["recent_weight"] = repr(self.recent_weight)
        return out


async def segment_behaviour(
    r: aioredis.Redis, keys: Keys, limit: int = SEGMENT_SAMPLE_MAX, stats: ShopStats | None = None
) -> dict[str, dict[str, float]]:
    """Segment name -> item -> weight of what its shoppers bought and recently viewed, over
    at most ``limit`` shoppers (a SCAN of the shoppers' scalar hashes, chunks pipelined);
    ``stats``, when given, counts every read shopper's purchases."""
    out: dict[str, dict[str, float]] = {}
    chunk: list[bytes] = []
    read = 0
    counted = stats or ShopStats()

    async def flush() -> None:
        pipe = r.pipeline(transaction=False)
        for key in chunk:
            base = key[: -len(b":f")]
            pipe.hmget(key, "seg", "baskets")
            pipe.hgetall(base + b":bought")
            pipe.lrange(base + b":recent", 0, RECENT_READ - 1)
        replies = await pipe.execute()
        for n in range(len(chunk)):
            (seg, baskets), bought, recent = replies[3 * n : 3 * n + 3]
            purchases = {item.decode(): _times(value) for item, value in bought.items()}
            counted.add(purchases)
            if baskets and baskets.isdigit():
                counted.recency.add(int(baskets), bought.values())
            if not seg:
                continue
            counts = out.setdefault(seg.decode(), {})
            for sku, times in purchases.items():
                counts[sku] = counts.get(sku, 0.0) + PURCHASE_WEIGHT * times
            for item in recent:
                sku = item.decode()
                counts[sku] = counts.get(sku, 0.0) + VIEW_WEIGHT
        chunk.clear()

    async for key in r.scan_iter(match=f"{keys.prefix}:{{u:*}}:f", count=1000):
        if read >= limit:
            break
        chunk.append(key if isinstance(key, bytes) else str(key).encode())
        read += 1
        if len(chunk) >= SCAN_CHUNK:
            await flush()
    if chunk:
        await flush()
    return out


def _times(value: bytes) -> int:
    """Purchase events of one ``:bought`` value (1 for the older two-field form)."""
    parts = value.split(b"|")
    return int(parts[3]) if len(parts) >= 4 and parts[3].isdigit() else 1


async def _inputs(
    r: aioredis.Redis, keys: Keys, partitions: int
) -> tuple[Counter[str], Counter[str], dict[str, Any], set[str]]:
    metas = await asyncio.gather(
        *(r.hget(keys.partition_meta(p), "max_ts") for p in range(partitions))
    )
    now_bucket = max(int(m or 0) for m in metas) // (POPULARITY_BUCKET_S * 1000)
    pipe = r.pipeline(transaction=False)
    buckets = range(now_bucket - POPULARITY_BUCKETS + 1, now_bucket + 1)
    for p in range(partitions):
        for b in buckets:
            pipe.zrevrange(keys.popularity(p, b), 0, 1999, withscores=True)
    pipe.hgetall(keys.catalog)
    pipe.hgetall(keys.experiments)
    replies = await pipe.execute()
    popular: Counter[str] = Counter()
    trending: Counter[str] = Counter()
    for n, reply in enumerate(replies[:-2]):
        recent = n % POPULARITY_BUCKETS >= POPULARITY_BUCKETS - TRENDING_BUCKETS
        for item, score in reply:
            popular[item.decode()] += score
            if recent:
                trending[item.decode()] += score
    catalog = {k.decode(): orjson.loads(v) for k, v in replies[-2].items()}
    variants = {"control"}
    for raw in replies[-1].values():
        for v in orjson.loads(raw).get("variations", []):
            variants.add(str(v.get("list_variant", "control")))
    return popular, trending, catalog, variants


async def build_lists(r: aioredis.Redis, keys: Keys, rules: SegmentRules, s: ProcessorSettings,
                      now_ms: int) -> ListReport:  # fmt: skip
    """Build and store every (segment, variant) list, the registry and the popular list."""
    popular, trending, catalog, variants = await _inputs(r, keys, s.partitions)
    stats = ShopStats()
    behaviour = await segment_behaviour(r, keys, stats=stats)

    def compute() -> tuple[dict[str, bytes], dict[str, bytes]]:
        lists: dict[str, bytes] = {}
        registry: dict[str, bytes] = {}
        for name in rules.all_segments():
            hseg = hash_segment(name, s.segment_key)
            category, lo, hi = _band(rules, name)
            etags = {}
            for v in sorted(variants):
                pop = trending if v.startswith("trending") else popular
                items = rank(pop, catalog, category, (lo, hi), s.list_size,
                             behaviour=behaviour.get(name))  # fmt: skip
                doc = _doc(hseg, v, items, now_ms)
                etags[v] = doc["etag"]
                lists[keys.segment_list(hseg, v)] = msgpack.packb(doc)
            registry[hseg] = msgpack.packb({"segment": name, "lists": etags})
        anon = rank(popular, catalog, "", (float("-inf"), float("inf")), s.list_size)
        lists[keys.popular_list] = msgpack.packb(_doc(ANON_HSEG, "control", anon, now_ms))
        return lists, registry

    lists, registry = await asyncio.to_thread(compute)
    stats.recent_weight = await asyncio.to_thread(stats.recency.weight)
    log.info("recent weight %s from %d shoppers' last baskets", stats.recent_weight,
             len(stats.recency.shoppers))  # fmt: skip
    rows = stats.item_rows(catalog)
    item_stats = msgpack.packb(rows)
    items_etag = _etag(rows) if rows else ""
    pipe = r.pipeline(transaction=True)  # one MULTI: every key carries {lists}
    for key, value in lists.items():  # SETs, not MSET: redis-py refuses MSET in cluster pipelines
        pipe.set(key, value)
    pipe.delete(keys.list_registry)
    pipe.hset(keys.list_registry, mapping=registry)  # type: ignore[arg-type]
    pipe.set(keys.item_stats, item_stats)
    pipe.delete(keys.shop_stats)
    pipe.hset(keys.shop_stats, mapping=stats.to_redis(items_etag))  # type: ignore[arg-type]
    await pipe.execute()
    return ListReport(len(registry), len(lists), sum(1 for _ in lists))


def _doc(hseg: str, variant: str, items: list[ListItem], now_ms: int) -> dict[str, Any]:
    body = segment_list_to_json(SegmentList(hseg, variant, "", now_ms, tuple(items)))
    body["etag"] = _etag(body["items"])
    return body


async def build_lists_locked(r: aioredis.Redis, keys: Keys, rules: SegmentRules,
                             s: ProcessorSettings, now_ms: int) -> ListReport | None:  # fmt: skip
    """``build_lists`` unless another process is building (a short lock in ``{lists}``)."""
    if not await r.set(keys.list_lock, s.consumer, nx=True, px=LOCK_TTL_MS):
        return None
    try:
        return await build_lists(r, keys, rules, s, now_ms)
    finally:
        await r.delete(keys.list_lock)
