"""Rerank a cached segment list with the request's light context.

Dropped: items in the cart, durable items the shopper recently bought (repurchasable items
stay), items out of stock in the list or in the config's item mask. Scored::

    score = base * list_score
          + popularity / (1 + list_rank)                 (the segment's own order)
          + price * price / max_price
          + category_boost / (1 + recency * position)    (item's category among the recent
                                                          ones; position 0 is the newest)

Weights default to ``DEFAULT_WEIGHTS``; an experiment variation overrides any of them. Then
the top ``k`` by score, at most ``category_cap`` per category (ties keep the list order).

Fast path: with the default shape (``base >= 0``, no popularity or price weight) an item's
score is its list score plus a per-category constant, so each category's items stay in list
score order and the top ``k`` is a k-way merge of the categories (prepared once per list),
touching only the items it returns or skips. Otherwise every item is scored and sorted. Both
give the same answer (a property test checks it).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cache_keys.wire import ContextCookie, ListItem, labels_to_json

__all__ = ["DEFAULT_WEIGHTS", "Prepared", "Ranked", "prepare", "rerank"]

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "base": 1.0,
    "popularity": 0.0,
    "price": 0.0,
    "category_boost": 0.25,
    "recency": 0.5,
}
_PREPARED_MAX = 256  # distinct lists kept per process (an isolate serves a few segments)


class Ranked(NamedTuple):
    """One item of the answer (a named tuple: a dozen are built per request)."""

    item: str
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class Prepared:
    """A list indexed once: item names, ``(-score, rank)`` best first overall and per category,
    and the catalog labels (name, image_url, price) answers carry for its labelled items."""

    names: frozenset[str]
    order: list[tuple[float, int]]
    by_category: dict[str, list[tuple[float, int]]]
    labels: dict[str, dict[str, Any]]


_PREPARED: dict[int, tuple[Sequence[ListItem], Prepared]] = {}


def prepare(items: Sequence[ListItem]) -> Prepared:
    """The index of ``items``, memoized by identity (lists are immutable tuples)."""
    hit = _PREPARED.get(id(items))
    if hit is not None and hit[0] is items:
        return hit[1]
    order = sorted((-it.score, rank) for rank, it in enumerate(items))
    by_category: dict[str, list[tuple[float, int]]] = {}
    for row in order:
        by_category.setdefault(items[row[1]].category, []).append(row)
    labels = {
        i.item: labels_to_json(i.name, i.image_url, i.price)
        for i in items
        if i.name or i.image_url  # a labelled item's price goes with its labels
    }
    prepared = Prepared(frozenset(i.item for i in items), order, by_category, labels)
    if len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.clear()
    _PREPARED[id(items)] = (items, prepared)
    return prepared


def _weights(overrides: Mapping[str, float]) -> tuple[float, float, float, float, float]:
    w = {**DEFAULT_WEIGHTS, **overrides} if overrides else DEFAULT_WEIGHTS
    return w["base"], w["popularity"], w["price"], w["category_boost"], w["recency"]


class _Request(NamedTuple):
    drop: frozenset[str]
    durable_bought: frozenset[str]
    boosts: dict[str, float]
    mask: frozenset[str]

    def excluded(self, it: ListItem) -> bool:
        name = it.item
        return (
            not it.in_stock
            or name in self.mask
            or name in self.drop
            or (it.durable and name in self.durable_bought)
        )


def _request(
    context: ContextCookie | None, boost_w: float, recency: float, mask: frozenset[str]
) -> _Request:
    if context is None:
        return _Request(frozenset(), frozenset(), {}, mask)
    boosts = {
        cat: boost_w / (1.0 + recency * pos)
        for pos, cat in reversed(list(enumerate(context.categories)))
    }
    return _Request(frozenset(context.cart), frozenset(context.durable_purchases), boosts, mask)


def _merged(
    items: Sequence[ListItem], req: _Request, base: float, k: int, cap: int
) -> list[Ranked]:
    """Top k by merging the overall order (unboosted categories) with one stream per boosted
    category; valid when every score is ``base * list score`` plus a per-category constant.
    """
    boosts, mask, drop, bought = req.boosts, req.mask, req.drop, req.durable_bought
    prep = prepare(items)
    # Stream "" walks the overall order, skipping boosted categories; a boosted category
    # present in the list gets a stream of its own, offset by its boost. (Category names are
    # never "\x00", so that key cannot collide.)
    streams: dict[str, tuple[list[tuple[float, int]], float]] = {"\x00": (prep.order, 0.0)}
    for cat, boost in boosts.items():
        if cat in prep.by_category:
            streams[cat] = (prep.by_category[cat], boost)
    heap: list[tuple[float, int, str, int]] = []
    for sid, (rows, offset) in streams.items():
        _advance(heap, items, boosts, base, stream=(sid, rows, offset), pos=0)
    pop, push = heapq.heappop, heapq.heappush
    out: list[Ranked] = []
    per_category: dict[str, int] = {}
    while heap and len(out) < k:
        neg_final, rank, sid, pos = pop(heap)
        it = items[rank]
        name, cat = it.item, it.category
        full = False
        if (
            it.in_stock
            and name not in mask
            and name not in drop
            and not (it.durable and name in bought)
        ):
            seen = per_category.get(cat, 0)
            if not cat or seen < cap:
                per_category[cat] = seen + 1
                reason = "recent-category" if cat in boosts else "segment"
                out.append(Ranked(name, round(-neg_final, 6), reason))
                full = bool(cat) and seen + 1 >= cap
        if full and sid != "\x00":
            continue  # a full boosted category: nothing more of it can be chosen
        rows, offset = streams[sid]
        pos += 1
        if sid == "\x00":  # inlined _advance: this loop is the hot path of every request
            n = len(rows)
            while pos < n and items[rows[pos][1]].category in boosts:
                pos += 1
            if pos < n:
                neg, nxt = rows[pos]
                push(heap, (base * neg, nxt, sid, pos))
        elif pos < len(rows):
            neg, nxt = rows[pos]
            push(heap, (base * neg - offset, nxt, sid, pos))
    return out


def _advance(
    heap: list[tuple[float, int, str, int]],
    items: Sequence[ListItem],
    boosts: Mapping[str, float],
    base: float,
    *,
    stream: tuple[str, list[tuple[float, int]], float],
    pos: int,
) -> None:
    """Push the next row of a stream (the overall stream skips boosted categories)."""
    sid, rows, offset = stream
    n = len(rows)
    if sid == "\x00":
        while pos < n and items[rows[pos][1]].category in boosts:
            pos += 1
    if pos < n:
        neg, rank = rows[pos]
        heapq.heappush(heap, (base * neg - offset, rank, sid, pos))


def _sorted(
    items: Sequence[ListItem],
    req: _Request,
    weights: tuple[float, float, float, float, float],
    k: int,
    cap: int,
) -> list[Ranked]:
    """Top k by scoring every item (any weights)."""
    base, popularity, price_w, _boost_w, _recency = weights
    max_price = max((i.price for i in items), default=0.0) if price_w else 0.0
    price_scale = price_w / max_price if max_price > 0 else 0.0
    boosts = req.boosts
    scored: list[tuple[float, int]] = []
    for rank, it in enumerate(items):
        if req.excluded(it):
            continue
        score = base * it.score
        if popularity:
            score += popularity / (1 + rank)
        if price_scale:
            score += price_scale * it.price
        boost = boosts.get(it.category)
        if boost is not None:
            score += boost
        scored.append((-score, rank))
    scored.sort()
    out: list[Ranked] = []
    per_category: dict[str, int] = {}
    for neg, rank in scored:
        it = items[rank]
        cat = it.category
        seen = per_category.get(cat, 0)
        if cat and seen >= cap:
            continue
        per_category[cat] = seen + 1
        reason = "recent-category" if cat in boosts else "segment"
        out.append(Ranked(it.item, round(-neg, 6), reason))
        if len(out) >= k:
            break
    return out


def rerank(
    items: Sequence[ListItem],
    context: ContextCookie | None,
    *,
    k: int,
    category_cap: int,
    weights: Mapping[str, float],
    mask: frozenset[str],
    exhaustive: bool = False,
) -> list[Ranked]:
    """The top ``k`` items for this request, best first (``exhaustive`` forces the slow path)."""
    w = _weights(weights)
    base, popularity, price_w, boost_w, recency = w
    req = _request(context, boost_w, recency, mask)
    if exhaustive or popularity or price_w or base < 0:
        return _sorted(items, req, w, k, category_cap)
    return _merged(items, req, base, k, category_cap)
