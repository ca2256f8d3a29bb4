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

Fast path: with the default shape (``base > 0``, no popularity or price weight) an item's
score is its list score plus a per-category constant, so each category's items stay in list
score order: the candidates are each boosted category's first ``category_cap`` and the
first ``k`` of the rest under the cap (walked from an order prepared once per list and
mask), and only those are sorted. Otherwise every item is scored and sorted. Both
give the same answer (a property test checks it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cache_keys.wire import ContextCookie, ListItem, labels_to_json

__all__ = ["DEFAULT_WEIGHTS", "ListItems", "Prepared", "Ranked", "prepare", "rerank"]

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "base": 1.0,
    "popularity": 0.0,
    "price": 0.0,
    "category_boost": 0.25,
    "recency": 0.5,
}
# Plain tuples (default lists, a list answered on the miss that stored it) are indexed in a
# small memo; a stored entry's items are ``ListItems`` and keep their own index.
_PREPARED_MAX = 32
_MASKS_MAX = 8  # item masks kept per list (one per config: the mask changes with stock)


class Ranked(NamedTuple):
    """One item of the answer (a named tuple: a dozen are built per request)."""

    item: str
    score: float
    reason: str


_new = tuple.__new__


@dataclass(frozen=True, slots=True)
class Prepared:
    """A list indexed once: item names, ``(-score, rank)`` best first overall and per category,
    and the catalog labels (name, image_url, price) answers carry for its labelled items."""

    names: frozenset[str]
    order: list[tuple[float, int]]
    by_category: dict[str, list[tuple[float, int]]]
    labels: dict[str, dict[str, Any]]
    # per item mask (by identity): the eligible rows, overall and per category (``_eligible``)
    eligible: dict[int, tuple[frozenset[str], list[Any], dict[str, list[Any]]]] = field(
        default_factory=dict, compare=False
    )
    # per item, its answer row's JSON around the score and reason (``edge.answer``), on demand
    fragments: dict[str, tuple[str, str]] = field(default_factory=dict, compare=False)


class ListItems(tuple[ListItem, ...]):
    """A stored entry's items (``edge.entry``), carrying their index once ``prepare`` built
    it: the index goes when the entry does, instead of outliving it in a process-wide memo
    that holds the list too."""

    prepared: Prepared | None = None


_PREPARED: dict[int, tuple[Sequence[ListItem], Prepared]] = {}


def prepare(items: Sequence[ListItem]) -> Prepared:
    """The index of ``items``: kept on ``ListItems``, else memoized by identity (lists are
    immutable tuples)."""
    if type(items) is ListItems:
        prep = items.prepared
        if prep is None:
            prep = items.prepared = _prepare(items)
        return prep
    hit = _PREPARED.get(id(items))
    if hit is not None and hit[0] is items:
        return hit[1]
    prepared = _prepare(items)
    if len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.clear()
    _PREPARED[id(items)] = (items, prepared)
    return prepared


def _prepare(items: Sequence[ListItem]) -> Prepared:
    order = sorted((-it.score, rank) for rank, it in enumerate(items))
    by_category: dict[str, list[tuple[float, int]]] = {}
    for row in order:
        by_category.setdefault(items[row[1]].category, []).append(row)
    labels = {
        i.item: labels_to_json(i.name, i.image_url, i.price)
        for i in items
        if i.name or i.image_url  # a labelled item's price goes with its labels
    }
    return Prepared(frozenset(i.item for i in items), order, by_category, labels)


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


# A row of a list's eligible order: (-score, rank, item, category, durable).
_Row = tuple[float, int, str, str, bool]


def _eligible(
    items: Sequence[ListItem], mask: frozenset[str]
) -> tuple[list[_Row], dict[str, list[_Row]]]:
    """The list's in-stock, unmasked items best first, overall and per category: all a
    request's merge needs that does not depend on the request (kept per list and mask)."""
    prep = prepare(items)
    hit = prep.eligible.get(id(mask))
    if hit is not None and hit[0] is mask:
        return hit[1], hit[2]
    rows: list[_Row] = []
    by_category: dict[str, list[_Row]] = {}
    for neg, rank in prep.order:
        it = items[rank]
        if it.in_stock and it.item not in mask:
            row = (neg, rank, it.item, it.category, it.durable)
            rows.append(row)
            by_category.setdefault(it.category, []).append(row)
    if len(prep.eligible) >= _MASKS_MAX:
        prep.eligible.clear()
    prep.eligible[id(mask)] = (mask, rows, by_category)
    return rows, by_category


def _merged(
    items: Sequence[ListItem], req: _Request, base: float, k: int, cap: int
) -> list[Ranked]:
    """Top k when every score is ``base * list score`` plus a per-category constant.

    Then a category's chosen items are its first ``cap`` eligible ones in list-score order,
    so the candidates are: those of each boosted category, and the first ``k`` of the
    others' order under the cap. Sorting those few by final score gives the answer.
    """
    boosts, drop, bought = req.boosts, req.drop, req.durable_bought
    rows, by_category = _eligible(items, req.mask)
    cands: list[tuple[float, int, str, str]] = []
    for cat, boost in boosts.items():
        taken = 0
        for neg, rank, name, _cat, durable in by_category.get(cat, ()):
            if name in drop or (durable and name in bought):
                continue
            cands.append((base * neg - boost, rank, name, "recent-category"))
            taken += 1
            if taken >= cap:
                break
    per_category: dict[str, int] = {}
    plain = 0
    for neg, rank, name, cat, durable in rows:
        if cat in boosts or name in drop or (durable and name in bought):
            continue
        if cat:  # (items without a category are never capped)
            seen = per_category.get(cat, 0)
            if seen >= cap:
                continue
            per_category[cat] = seen + 1
        cands.append((base * neg, rank, name, "segment"))
        plain += 1
        if plain >= k:
            break
    cands.sort()
    # tuple.__new__: a named tuple's own __new__ is a Python function (a frame per row)
    return [_new(Ranked, (name, round(-neg, 6), reason)) for neg, _rank, name, reason in cands[:k]]


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
    # base 0 ties every list score: the order is then the list's own, not the score's
    if exhaustive or popularity or price_w or base <= 0:
        return _sorted(items, req, w, k, category_cap)
    return _merged(items, req, base, k, category_cap)
