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

    >>> [r.item for r in rerank(items, ctx, k=3, category_cap=1, weights={}, mask=frozenset())]
    ... # doctest: +SKIP
    ['MILK-1', 'TV-2', 'BREAD-3']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cache_keys.wire import ContextCookie, ListItem

__all__ = ["DEFAULT_WEIGHTS", "Ranked", "rerank"]

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "base": 1.0,
    "popularity": 0.0,
    "price": 0.0,
    "category_boost": 0.25,
    "recency": 0.5,
}


@dataclass(frozen=True, slots=True)
class Ranked:
    """One item of the answer."""

    item: str
    score: float
    reason: str


def _weights(overrides: Mapping[str, float]) -> tuple[float, float, float, float, float]:
    w = {**DEFAULT_WEIGHTS, **overrides} if overrides else DEFAULT_WEIGHTS
    return w["base"], w["popularity"], w["price"], w["category_boost"], w["recency"]


def rerank(
    items: Sequence[ListItem],
    context: ContextCookie | None,
    *,
    k: int,
    category_cap: int,
    weights: Mapping[str, float],
    mask: frozenset[str],
) -> list[Ranked]:
    """The top ``k`` items for this request, best first."""
    base, popularity, price_w, boost_w, recency = _weights(weights)
    if context is not None:
        drop = frozenset(context.cart)
        durable_bought = frozenset(context.durable_purchases)
        boosts = {
            cat: boost_w / (1.0 + recency * pos)
            for pos, cat in reversed(list(enumerate(context.categories)))
        }
    else:
        drop = durable_bought = frozenset()
        boosts = {}
    max_price = max((i.price for i in items), default=0.0) if price_w else 0.0
    price_scale = price_w / max_price if max_price > 0 else 0.0
    scored = []
    for rank, it in enumerate(items):
        name = it.item
        if not it.in_stock or name in mask or name in drop:
            continue
        if it.durable and name in durable_bought:
            continue
        score = base * it.score
        if popularity:
            score += popularity / (1 + rank)
        if price_scale:
            score += price_scale * it.price
        boost = boosts.get(it.category)
        if boost is not None:
            score += boost
        scored.append((-score, rank, it, boost is not None))
    scored.sort(key=lambda row: (row[0], row[1]))
    out: list[Ranked] = []
    per_category: dict[str, int] = {}
    for neg, _rank, it, boosted in scored:
        cat = it.category
        seen = per_category.get(cat, 0)
        if cat and seen >= category_cap:
            continue
        per_category[cat] = seen + 1
        out.append(Ranked(it.item, round(-neg, 6), "recent-category" if boosted else "segment"))
        if len(out) >= k:
            break
    return out
