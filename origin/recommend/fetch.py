"""The two pipelined round trips of one recommendation, never one per item.

1. the shopper's features: ``:f``, ``:recent``, ``:cart``, ``:bought``, ``:aff``;
2. only what the in-memory caches miss: co-visitation neighbours of the recent views and the
   newest purchases (one small script per partition and source item: its neighbours with
   their co-visitation and occurrence weights), the segment list of the shopper's segment
   and list variant, and catalog entries (one HMGET) for purchased items and known
   neighbours.

Neighbours are ranked by cosine similarity, ``co(a, b) / sqrt(occ(a) occ(b))``, over every
partition, and only with a minimum support: raw co-visitation counts would rank the shop's
best sellers next to everything. A neighbour missing from a partition's capped list has its
occurrence there estimated from the partitions that list it (partitions are random samples
of shoppers).

Neighbours first seen in the second trip are queued for the next request's catalog lookup
and ranked meanwhile with what is known (an unknown category; the item mask guards stock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack

from cache_keys.wire import SegmentList, parse_segment_list
from origin.catalog_records import decode_entry
from origin.recommend.caches import MISSING, ListView
from origin.recommend.features import RECENT_USED, Features, decode_features
from origin.recommend.ranking import Inputs, shop_repeat_share
from origin.snapshot import Snapshot
from origin.state import AppState

__all__ = ["COVIS_PER_SOURCE", "covis_sources", "load_features", "load_inputs", "similar"]

COVIS_PER_SOURCE = 12
COVIS_READ = 24  # neighbours read per partition to normalize (twice what is kept per source)
# A pair needs this much co-visitation weight to count: two co-views, or one basket bought
# together (a purchase weighs 3): one chance co-view says nothing.
MIN_SUPPORT = 2
SOURCE_DECAY = 0.7  # the newest viewed item counts most
MAX_BOUGHT_LOOKUPS = 50
BOUGHT_SOURCES = 2  # the newest purchases also seed "goes with" (cached per item like views)
# Round trip 1 as one script: the five keys share the shopper's hash tag (one Cluster slot),
# and one command costs the client far less than five pipelined ones.
_FEATURES = """
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1),
        redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4]),
        redis.call('HGETALL', KEYS[5])}
"""


# KEYS: co-visitation zset of the source item, the partition's occurrence hash (one slot).
# ARGV: source item, neighbours to read. Reply: {occ(source), {b, co, ...}, {occ(b) ...}}.
_NEIGHBOURS = b"""
local z = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
local names = {}
for i = 1, #z, 2 do names[#names + 1] = z[i] end
local occ = {}
if #names > 0 then occ = redis.call('HMGET', KEYS[2], unpack(names)) end
return {redis.call('HGET', KEYS[2], ARGV[1]) or '0', z, occ}
"""  # bytes: the client would encode the text again for every call


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    it = iter(flat)
    return dict(zip(it, it, strict=True))


async def load_features(state: AppState, sid: str, now_ms: int) -> Features:
    """Round trip 1."""
    k = state.keys
    script = state.extras.get("features_script")
    if script is None:
        script = state.extras["features_script"] = state.store.client.register_script(_FEATURES)
    keys = [k.shopper(sid), k.recent(sid), k.cart(sid), k.bought(sid), k.affinity(sid)]
    f, recent, cart, bought, aff = await state.store.run(
        "features", script(keys=keys, args=[RECENT_USED])
    )
    return decode_features(
        _pairs(f), recent, _pairs(cart), _pairs(bought), _pairs(aff), now_ms=now_ms
    )


def covis_sources(feats: Features) -> tuple[str, ...]:
    """What "goes with what you have" starts from: the newest views, then the newest buys."""
    newest = sorted(feats.bought, key=lambda i: -feats.bought[i][1])[:BOUGHT_SOURCES]
    return tuple(dict.fromkeys([*feats.recent[:RECENT_USED], *newest]))


def _list_key(snap: Snapshot, hseg: str, variant: str) -> tuple[str, str, str] | None:
    entry = snap.segments.get(hseg)
    if entry is None:
        return None
    for v in (variant, "control"):
        if v in entry.lists:
            return (hseg, v, entry.lists[v])
    return None


Neighbours = dict[str, tuple[tuple[str, float], ...]]


def _merge_covis(
    sources: tuple[str, ...], neighbours: Neighbours
) -> tuple[dict[str, float], dict[str, str]]:
    """Neighbour -> summed weight (newer sources count more), and the source it owes most to."""
    merged: dict[str, float] = {}
    best: dict[str, tuple[float, str]] = {}
    for i, src in enumerate(sources):
        factor = SOURCE_DECAY**i
        for item, weight in neighbours.get(src, ()):
            # a source may go with another source: an item viewed twice is a strong candidate
            merged[item] = merged.get(item, 0.0) + factor * weight
            if factor * weight > best.get(item, (0.0, ""))[0]:
                best[item] = (factor * weight, src)
    return merged, {item: src for item, (_, src) in best.items()}


def _decode_list(raw: bytes | None) -> SegmentList | None:
    if raw is None:
        return None
    try:
        return parse_segment_list(msgpack.unpackb(raw))
    except (ValueError, TypeError, msgpack.UnpackException):
        return None


def _num(raw: Any) -> float:
    try:
        return float(raw) if raw is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def similar(replies: list[list[Any]]) -> tuple[tuple[str, float], ...]:
    """One source item's neighbours by cosine similarity, from its per-partition replies."""
    co: dict[str, float] = {}
    occ: dict[str, float] = {}
    seen: dict[str, int] = {}
    own = 0.0
    for own_raw, flat, occs in replies:
        own += _num(own_raw)
        for j in range(0, len(flat), 2):
            item = flat[j].decode() if isinstance(flat[j], bytes) else str(flat[j])
            co[item] = co.get(item, 0.0) + _num(flat[j + 1])
            occ[item] = occ.get(item, 0.0) + _num(occs[j // 2] if j // 2 < len(occs) else None)
            seen[item] = seen.get(item, 0) + 1
    parts = max(1, len(replies))
    out = []
    for item, c in co.items():
        if c < MIN_SUPPORT:
            continue
        # occurrence counts never below co-visitation (older data may lack them)
        n_item = max(occ[item] * parts / seen[item], c)
        out.append((item, round(c / math.sqrt(max(own, c) * n_item), 9)))
    out.sort(key=lambda kv: (-kv[1], kv[0]))
    return tuple(out[:COVIS_PER_SOURCE])


@dataclass(slots=True)
class _Plan:
    """What round trip 2 must fetch."""

    covis: list[str]
    list_key: tuple[str, str, str] | None
    lookups: list[str]


async def _fetch(
    state: AppState, plan: _Plan, neighbours: Neighbours, now: float
) -> ListView | None:
    caches, keys, parts = state.caches, state.keys, state.settings.partitions

    def build(p: Any) -> None:
        for src in plan.covis:
            for n in range(parts):
                # EVAL, not a registered script: queued synchronously, routed by its first
                # key on a cluster, and a cache miss only (the text is 300 bytes)
                ks = (keys.covisitation(n, src), keys.occurrences(n))
                p.execute_command("EVAL", _NEIGHBOURS, 2, *ks, src, COVIS_READ)
        if plan.list_key is not None:
            p.get(keys.segment_list(plan.list_key[0], plan.list_key[1]))
        if plan.lookups:
            p.hmget(keys.catalog, plan.lookups)

    replies = await state.store.pipeline("candidates", build)
    for i, src in enumerate(plan.covis):
        neighbours[src] = similar(replies[i * parts : (i + 1) * parts])
        caches.covis.put(src, neighbours[src], now)
    pos = len(plan.covis) * parts
    view = None
    if plan.list_key is not None:
        slot = (plan.list_key[0], plan.list_key[1])
        view = caches.list_view(slot, replies[pos], lambda raw: ListView.of(_decode_list(raw)))
        caches.lists.put(plan.list_key, view, now)
        pos += 1
    if plan.lookups:
        for sku, raw in zip(plan.lookups, replies[pos], strict=True):
            caches.catalog.put(sku, decode_entry(raw), now)
    caches.want((i for src in plan.covis for i, _ in neighbours[src]), now)
    return view


async def load_inputs(
    state: AppState, feats: Features, list_variant: str, snap: Snapshot, now_ms: int
) -> Inputs:
    """Round trip 2 (skipped entirely when the caches hold everything)."""
    caches, now = state.caches, now_ms / 1000
    sources = covis_sources(feats)
    neighbours: Neighbours = {}
    missing = []
    for src in sources:
        hit = caches.covis.get(src, now)
        if isinstance(hit, tuple):
            neighbours[src] = hit
        else:
            missing.append(src)
    list_key = _list_key(snap, feats.hseg, list_variant)
    view = caches.lists.get(list_key, now) if list_key else None
    want_list = list_key if list_key is not None and not isinstance(view, ListView) else None
    bought = sorted(feats.bought, key=lambda i: -feats.bought[i][0])[:MAX_BOUGHT_LOOKUPS]
    candidates = [*bought, *(i for n in neighbours.values() for i, _ in n)]
    catalog, lookups = caches.catalog.split(candidates, now)
    lookups = list(dict.fromkeys([*lookups, *caches.take_wanted()]))
    if missing or want_list or lookups:
        fetched = await _fetch(state, _Plan(missing, want_list, lookups), neighbours, now)
        view = fetched if want_list else view
        for sku in lookups:
            entry = caches.catalog.get(sku, now)
            catalog[sku] = None if entry is MISSING else entry  # type: ignore[assignment]
    covis, covis_source = _merge_covis(sources, neighbours)
    return Inputs(
        features=feats,
        now_ms=now_ms,
        covis=covis,
        covis_source=covis_source,
        segment=view if isinstance(view, ListView) else ListView(),
        popular=snap.popular_view,
        shop_items=snap.shop_items,
        catalog=catalog,
        mask=snap.mask,
        repeat_share=shop_repeat_share(state.settings.repeat_share, snap.repeat_share),
        recent_weight=snap.recent_weight,
    )
