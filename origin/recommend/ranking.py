"""The pure core of recommendations: candidates, scores, filters and per-category diversity.

No I/O: ``rank(inputs, strategy, k, category_cap)`` is a function of its arguments, so every
rule is tested without Redis. Scores are sums of normalized signals, each weighted by the
strategy (which an A/B variation may change); an item's reason is its largest signal::

    segment            base score in the shopper's segment list
    viewed-together    co-visited with the shopper's recently viewed items
    popular            global popularity
    buy-again          the shopper's own repeat purchases (repurchasable items only)
    category-affinity  the shopper's affinity for the item's category
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from origin.catalog_records import CatalogEntry
from origin.recommend.caches import ListView
from origin.recommend.features import Features

__all__ = ["Inputs", "Scored", "Strategy", "buy_again", "diversify", "rank"]

REPEAT_HALF_LIFE_MS = 30 * 86400 * 1000
UNKNOWN_CATEGORY = "\x00unknown"  # one bucket for the cap; never a reason to drop an item
_LN2 = math.log(2)
T = TypeVar("T")
# (-score, item, category, (segment, viewed-together, buy-again, affinity, popular) signals)
Row = tuple[float, str, str, tuple[float, float, float, float, float]]


@dataclass(frozen=True, slots=True)
class Strategy:
    """Signal weights; a variation's ``weights`` override them by name."""

    base: float = 1.0
    category_boost: float = 0.6
    popularity: float = 0.4
    recency: float = 0.9
    price: float = 0.0
    repeat: float = 0.7

    @classmethod
    def from_weights(cls, weights: Mapping[str, float]) -> Strategy:
        """Defaults overridden by the names this strategy knows (others are the edge's)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in weights.items() if k in names})


@dataclass(frozen=True, slots=True)
class Scored:
    """One recommended item."""

    item: str
    score: float
    reason: str
    category: str = ""


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything one ranking needs."""

    features: Features
    now_ms: int
    covis: Mapping[str, float] = field(default_factory=dict)
    segment: ListView = field(default_factory=ListView)
    popular: ListView = field(default_factory=ListView)
    catalog: Mapping[str, CatalogEntry | None] = field(default_factory=dict)
    mask: frozenset[str] = frozenset()


_UNKNOWN: tuple[str, float, bool, bool] = ("", 0.0, True, False)


def _info(inp: Inputs, item: str) -> tuple[str, float, bool, bool]:
    """(category, price, in stock, durable): the catalog when known, else the lists."""
    entry = inp.catalog.get(item)
    if entry is not None:
        return entry.category, entry.price, entry.stock > 0, entry.durable
    li = inp.segment.index.get(item) or inp.popular.index.get(item)
    if li is not None:
        return li.category, li.price, li.in_stock, li.durable
    return _UNKNOWN  # unknown item: kept, the mask still guards stock


def _normalized(values: Mapping[str, float]) -> dict[str, float]:
    top = max(values.values(), default=0.0)
    if top <= 0:
        return {}
    return {k: v / top for k, v in values.items() if v > 0}


def repeat_scores(bought: Mapping[str, tuple[int, int]], now_ms: int) -> dict[str, float]:
    """Frequency and recency of the shopper's own purchases, in [0, 1]."""
    if not bought:
        return {}
    top = max(c for c, _ in bought.values()) or 1
    out = {}
    for item, (count, last_ms) in bought.items():
        recency = math.exp(-_LN2 * max(0, now_ms - last_ms) / REPEAT_HALF_LIFE_MS)
        out[item] = 0.6 * (count / top) + 0.4 * recency
    return out


def _category(s: Any) -> str:
    return str(s.category)


def _reason(seg: float, cov: float, rep: float, aff: float, pop: float) -> str:
    best, reason = seg, "segment"
    for value, name in ((cov, "viewed-together"), (rep, "buy-again"),
                        (aff, "category-affinity"), (pop, "popular")):  # fmt: skip
        if value > best:
            best, reason = value, name
    return reason


def rank(inp: Inputs, strategy: Strategy, k: int, category_cap: int) -> list[Scored]:
    """The top ``k`` items for the shopper, diversified, each with its reason."""
    feats = inp.features
    seg, pop = inp.segment.scores, inp.popular.scores
    cov = _normalized(inp.covis)
    aff = _normalized(feats.affinity)
    rep = repeat_scores(feats.bought, inp.now_ms)
    st = strategy
    ranked: list[Row] = []
    prices: dict[str, float] = {}
    for item in {**seg, **pop, **cov, **rep}:
        if item in feats.cart or item in inp.mask:
            continue
        cat, price, in_stock, durable = _info(inp, item)
        if not in_stock or (durable and item in feats.bought):
            continue
        s_seg, s_cov = st.base * seg.get(item, 0.0), st.recency * cov.get(item, 0.0)
        s_rep, s_pop = st.repeat * rep.get(item, 0.0), st.popularity * pop.get(item, 0.0)
        s_aff = st.category_boost * aff.get(cat, 0.0)
        total = s_seg + s_cov + s_rep + s_aff + s_pop
        prices[item] = price
        ranked.append((-total, item, cat, (s_seg, s_cov, s_rep, s_aff, s_pop)))
    if st.price and prices:
        top = max(prices.values()) or 1.0
        ranked = [(t - st.price * prices[i] / top, i, c, s) for t, i, c, s in ranked]
    ranked.sort()
    return _top(ranked, k, category_cap)


def _row_category(row: Row) -> str:
    return row[2]


def _top(ranked: list[Row], k: int, cap: int) -> list[Scored]:
    """Diversify rows; reasons are worked out only for the items that make the answer."""
    rows = diversify(ranked, k, cap, category=_row_category)
    return [Scored(i, round(-t, 6), _reason(*s), c) for t, i, c, s in rows]


def buy_again(inp: Inputs, k: int, category_cap: int) -> list[Scored]:
    """The shopper's own repurchasable purchases, by frequency and recency."""
    feats = inp.features
    ranked: list[Row] = []
    for item, score in repeat_scores(feats.bought, inp.now_ms).items():
        cat, _, in_stock, durable = _info(inp, item)
        if item in feats.cart or item in inp.mask or not in_stock or durable:
            continue
        ranked.append((-score, item, cat, (0.0, 0.0, score, 0.0, 0.0)))
    ranked.sort()
    return _top(ranked, k, category_cap)


def diversify(
    ranked: Iterable[T], k: int, cap: int, category: Callable[[T], str] = _category
) -> list[T]:
    """At most ``cap`` items per category in the top ``k``, never fewer than ``k`` items
    while candidates remain: items over the cap wait and fill any remaining places in order.

    Unknown categories share one bucket for the cap's bookkeeping only.
    """
    taken: list[T] = []
    waiting: list[T] = []
    per_cat: dict[str, int] = {}
    for s in ranked:
        if len(taken) >= k:
            break
        cat = category(s) or UNKNOWN_CATEGORY
        n = per_cat.get(cat, 0)
        if n < cap:
            per_cat[cat] = n + 1
            taken.append(s)
        else:
            waiting.append(s)
    if len(taken) < k:
        taken.extend(waiting[: k - len(taken)])
    return taken
