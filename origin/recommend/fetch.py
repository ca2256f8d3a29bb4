"""The two pipelined round trips of one recommendation, never one per item.

1. the shopper's features: ``:f``, ``:recent``, ``:cart``, ``:bought``, ``:aff``;
2. only what the in-memory caches miss: co-visitation neighbours of the recent items (one
   ZREVRANGE per partition and source item), the segment list of the shopper's segment and
   list variant, and catalog entries (one HMGET) for purchased items and known neighbours.

Neighbours first seen in the second trip are queued for the next request's catalog lookup
and ranked meanwhile with what is known (an unknown category; the item mask guards stock).
"""

from __future__ import annotations

from typing import Any

import msgpack

from cache_keys.wire import ListItem, SegmentList, parse_segment_list
from origin.catalog import decode_entry
from origin.recommend.features import RECENT_USED, Features, decode_features
from origin.recommend.ranking import Inputs
from origin.snapshot import Snapshot
from origin.state import AppState

__all__ = ["COVIS_PER_SOURCE", "load_features", "load_inputs"]

COVIS_PER_SOURCE = 20
SOURCE_DECAY = 0.7  # the newest viewed item counts most
MAX_BOUGHT_LOOKUPS = 50


async def load_features(state: AppState, sid: str, now_ms: int) -> Features:
    """Round trip 1."""
    k = state.keys

    def build(p: Any) -> None:
        p.hgetall(k.shopper(sid))
        p.lrange(k.recent(sid), 0, RECENT_USED - 1)
        p.hgetall(k.cart(sid))
        p.hgetall(k.bought(sid))
        p.hgetall(k.affinity(sid))

    f, recent, cart, bought, aff = await state.store.pipeline("features", build)
    return decode_features(f, recent, cart, bought, aff, now_ms=now_ms)


def _list_key(snap: Snapshot, hseg: str, variant: str) -> tuple[str, str, str] | None:
    entry = snap.segments.get(hseg)
    if entry is None:
        return None
    for v in (variant, "control"):
        if v in entry.lists:
            return (hseg, v, entry.lists[v])
    return None


def _merge_covis(
    sources: tuple[str, ...], neighbours: dict[str, tuple[tuple[str, float], ...]]
) -> dict[str, float]:
    merged: dict[str, float] = {}
    skip = set(sources)
    for i, src in enumerate(sources):
        factor = SOURCE_DECAY**i
        for item, weight in neighbours.get(src, ()):
            if item not in skip:
                merged[item] = merged.get(item, 0.0) + factor * weight
    return merged


def _decode_list(raw: bytes | None) -> SegmentList | None:
    if raw is None:
        return None
    try:
        return parse_segment_list(msgpack.unpackb(raw))
    except (ValueError, TypeError, msgpack.UnpackException):
        return None


def _zmerge(replies: list[list[tuple[bytes, float]]]) -> tuple[tuple[str, float], ...]:
    out: dict[str, float] = {}
    for reply in replies:
        for member, score in reply:
            item = member.decode()
            out[item] = out.get(item, 0.0) + float(score)
    ranked = sorted(out.items(), key=lambda kv: -kv[1])[:COVIS_PER_SOURCE]
    return tuple(ranked)


async def load_inputs(
    state: AppState, feats: Features, list_variant: str, snap: Snapshot, now_ms: int
) -> Inputs:
    """Round trip 2 (skipped entirely when the caches hold everything)."""
    caches, keys, parts = state.caches, state.keys, state.settings.partitions
    sources = feats.recent[:RECENT_USED]
    neighbours = {s: caches.covis[s] for s in sources if s in caches.covis}
    covis_missing = [s for s in sources if s not in neighbours]
    list_key = _list_key(snap, feats.hseg, list_variant)
    seg_list = caches.lists.get(list_key) if list_key else None
    want_list = list_key is not None and seg_list is None
    known_neighbours = {i for n in neighbours.values() for i, _ in n}
    bought = sorted(feats.bought, key=lambda i: -feats.bought[i][0])[:MAX_BOUGHT_LOOKUPS]
    lookups = [s for s in dict.fromkeys([*bought, *known_neighbours]) if s not in caches.catalog]
    lookups = list(dict.fromkeys([*lookups, *caches.take_wanted()]))
    if covis_missing or want_list or lookups:

        def build(p: Any) -> None:
            for src in covis_missing:
                for n in range(parts):
                    p.zrevrange(keys.covisitation(n, src), 0, COVIS_PER_SOURCE - 1, withscores=True)
            if want_list and list_key is not None:
                p.get(keys.segment_list(list_key[0], list_key[1]))
            if lookups:
                p.hmget(keys.catalog, lookups)

        replies = await state.store.pipeline("candidates", build)
        for i, src in enumerate(covis_missing):
            neighbours[src] = caches.covis[src] = _zmerge(replies[i * parts : (i + 1) * parts])
        pos = len(covis_missing) * parts
        if want_list and list_key is not None:
            seg_list = _decode_list(replies[pos])
            if seg_list is not None:
                caches.lists[list_key] = seg_list
            pos += 1
        if lookups:
            for sku, raw in zip(lookups, replies[pos], strict=True):
                caches.catalog[sku] = decode_entry(raw)
        caches.want(i for n in neighbours.values() for i, _ in n)
    catalog = {s: caches.catalog.get(s) for s in (*bought, *_items(neighbours))}
    popular: tuple[ListItem, ...] = snap.popular.items if snap.popular is not None else ()
    return Inputs(
        features=feats,
        now_ms=now_ms,
        covis=_merge_covis(sources, neighbours),
        segment_items=seg_list.items if seg_list is not None else (),
        popular_items=popular,
        catalog=catalog,
        mask=snap.mask,
    )


def _items(neighbours: dict[str, tuple[tuple[str, float], ...]]) -> list[str]:
    return [i for n in neighbours.values() for i, _ in n]
