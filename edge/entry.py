"""What an edge stores per cache key: the segment list, its tags, and their generations.

The stored body is JSON, version 1::

    {"v": 1, "stored_at_ms": 1764000000000,
     "gens": {"*": [0, 0], "route:home": [0, 2], "sku:ab-1": [1, 1], ...},
     "list": {<segment-list document>}}

``stored_at_ms`` is the edge's own stamp: the Workers Cache API ignores stale-while-revalidate,
so the edge decides freshness itself. ``gens`` are the (soft, hard) generations of every tag of
the entry (and ``*``) in the config current when it was stored; a later config with a higher
generation for any of them makes the entry stale (soft) or unservable (hard). The raw list is
stored, not the reranked answer, so one entry serves every shopper of the segment and variants
and nothing per shopper is ever stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cache_keys.errors import CacheKeysError
from cache_keys.keys import cache_tag_header, compose_tags
from cache_keys.segments import Hseg
from cache_keys.wire import (
    ALL_TAG,
    EdgeConfig,
    RoutePolicy,
    SegmentList,
    parse_segment_list,
    segment_list_to_json,
)
from edge.rerank import ListItems

__all__ = ["Entry", "decode_entry", "encode_entry", "entry_tags", "make_entry", "stored_headers"]

# Cloudflare caps Cache-Tag at 16 KB; 300 sku tags of typical length stay far below it.
MAX_SKU_TAGS = 300


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored entry read back."""

    stored_at_ms: int
    gens: Mapping[str, tuple[int, int]]
    seglist: SegmentList


def entry_tags(route: str, hseg: Hseg, experiments: Iterable[str], sl: SegmentList) -> list[str]:
    """The Cache-Tag tags of an entry: route, segment, experiments, categories, skus."""
    items = sl.items[:MAX_SKU_TAGS]
    return compose_tags(
        route=route,
        hseg=hseg,
        experiments=experiments,
        categories=sorted({i.category for i in items if i.category}),
        skus=[i.item for i in items],
    )


def _own_index(sl: SegmentList) -> SegmentList:
    """The list with items that keep their rerank index (``edge.rerank.ListItems``): it is
    dropped with the entry."""
    return replace(sl, items=ListItems(sl.items))


def make_entry(
    sl: SegmentList, tags: Iterable[str], config: EdgeConfig, now_ms: int
) -> tuple[Entry, str]:
    """The entry to store and its body: the list with the stamp and its tags' current
    generations (a store that keeps objects uses the entry and skips decoding the body)."""
    gens = config.generations
    recorded = {t: gens.get(t, (0, 0)) for t in (ALL_TAG, *tags)}
    doc = {"v": 1, "stored_at_ms": now_ms, "gens": recorded, "list": segment_list_to_json(sl)}
    return Entry(now_ms, recorded, _own_index(sl)), json.dumps(doc, separators=(",", ":"))


def encode_entry(sl: SegmentList, tags: Iterable[str], config: EdgeConfig, now_ms: int) -> str:
    """The stored body: the list with the stamp and its tags' current generations."""
    return make_entry(sl, tags, config, now_ms)[1]


def _gens(value: Any) -> dict[str, tuple[int, int]] | None:
    if not isinstance(value, dict):
        return None
    out = {}
    for t, pair in value.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(x) is int for x in pair)):
            return None
        out[t] = (pair[0], pair[1])
    return out


# Decoded entries by body: a hot key is read from the cache on every request, and parsing and
# validating 200 items costs far more than hashing the body. Cleared past the cap.
_DECODED: dict[str, Entry] = {}
_DECODED_MAX = 128


def decode_entry(text: str) -> Entry | None:
    """The entry in a stored body; None for anything unreadable (treated as a miss)."""
    entry = _DECODED.get(text)
    if entry is None:
        entry = _decode(text)
        if entry is not None:
            if len(_DECODED) >= _DECODED_MAX:
                _DECODED.clear()
            _DECODED[text] = entry
    return entry


def _decode(text: str) -> Entry | None:
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("v") != 1:
            return None
        stored_at = doc.get("stored_at_ms")
        gens = _gens(doc.get("gens"))
        if type(stored_at) is not int or gens is None:
            return None
        return Entry(stored_at, gens, _own_index(parse_segment_list(doc.get("list"))))
    except (ValueError, CacheKeysError):
        return None


def stored_headers(policy: RoutePolicy, tags: Iterable[str]) -> dict[str, str]:
    """Headers of the stored response: shared-cacheable long enough for stale-if-error.

    The Cache API evicts at ``max-age``, so the stored lifetime covers the whole window in
    which the entry may still be served (fresh, stale-while-revalidate, or stale-if-error).
    """
    keep_s = policy.max_age_s + max(policy.swr_s, policy.sie_s)
    return {
        "content-type": "application/json",
        "cache-control": f"public, max-age={keep_s}",
        "cache-tag": cache_tag_header(tags),
    }
