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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields

from cache_keys.wire import ListItem
from origin.catalog import CatalogEntry
from origin.recommend.features import Features

__all__ = ["Inputs", "Scored", "Strategy", "buy_again", "diversify", "rank"]

SEGMENT_TAKE = 120  # candidates read from the segment list (it holds up to a few hundred)
POPULAR_TAKE = 60
REPEAT_HALF_LIFE_MS = 30 * 86400 * 1000
UNKNOWN_CATEGORY = "\x00unknown"  # one bucket for the cap; never a reason to drop an item


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
    segment_items: Sequence[ListItem] = ()
    popular_items: Sequence[ListItem] = ()
    catalog: Mapping[str, CatalogEntry | None] = field(default_factory=dict)
    mask: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Info:
    category: str = ""
    price: float = 0.0
    in_stock: bool = True
    durable: bool = False


def _infos(inp: Inputs) -> dict[str, _Info]:
    info: dict[str, _Info] = {}
    for li in (*inp.popular_items, *inp.segment_items):
        info[li.item] = _Info(li.category, li.price, li.in_stock, li.durable)
    for sku, entry in inp.catalog.items():
        if entry is not None:  # the catalog is the record of truth when known
            info[sku] = _Info(entry.category, entry.price, entry.in_stock, entry.durable)
    return info


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
        age = max(0, now_ms - last_ms)
        recency = math.exp(-math.log(2) * age / REPEAT_HALF_LIFE_MS)
        out[item] = 0.6 * (count / top) + 0.4 * recency
    return out


def _allowed(item: str, info: _Info | None, inp: Inputs) -> bool:
    if item in inp.features.cart or item in inp.mask:
        return False
    if info is None:
        return True  # unknown item: kept, the mask still guards stock
    if not info.in_stock:
        return False
    return not (info.durable and item in inp.features.bought)


def rank(inp: Inputs, strategy: Strategy, k: int, category_cap: int) -> list[Scored]:
    """The top ``k`` items for the shopper, diversified, each with its reason."""
    info = _infos(inp)
    seg = _normalized({li.item: li.score for li in inp.segment_items[:SEGMENT_TAKE]})
    pop = _normalized({li.item: li.score for li in inp.popular_items[:POPULAR_TAKE]})
    cov = _normalized(dict(inp.covis))
    aff = _normalized(inp.features.affinity)
    rep = repeat_scores(inp.features.bought, inp.now_ms)
    prices = [i.price for i in info.values() if i.price > 0]
    top_price = max(prices, default=1.0)
    scored: list[Scored] = []
    for item in {**seg, **pop, **cov, **rep}:
        it = info.get(item)
        if not _allowed(item, it, inp):
            continue
        cat = it.category if it is not None else ""
        signals = (
            (strategy.base * seg.get(item, 0.0), "segment"),
            (strategy.recency * cov.get(item, 0.0), "viewed-together"),
            (strategy.repeat * rep.get(item, 0.0), "buy-again"),
            (strategy.category_boost * aff.get(cat, 0.0), "category-affinity"),
            (strategy.popularity * pop.get(item, 0.0), "popular"),
        )
        total = sum(s for s, _ in signals)
        if strategy.price and it is not None:
            total += strategy.price * (it.price / top_price)
        reason = max(signals, key=lambda s: s[0])[1]
        scored.append(Scored(item, round(total, 6), reason, cat))
    scored.sort(key=lambda s: (-s.score, s.item))
    return diversify(scored, k, category_cap)


def buy_again(inp: Inputs, k: int, category_cap: int) -> list[Scored]:
    """The shopper's own repurchasable purchases, by frequency and recency."""
    info = _infos(inp)
    scored = [
        Scored(item, round(score, 6), "buy-again", info[item].category if item in info else "")
        for item, score in repeat_scores(inp.features.bought, inp.now_ms).items()
        if _allowed(item, info.get(item), inp)
    ]
    scored.sort(key=lambda s: (-s.score, s.item))
    return diversify(scored, k, category_cap)


def diversify(ranked: Iterable[Scored], k: int, cap: int) -> list[Scored]:
    """At most ``cap`` items per category in the top ``k``, never fewer than ``k`` items
    while candidates remain: items over the cap wait and fill any remaining places in order.

    Unknown categories share one bucket for the cap's bookkeeping only.
    """
    taken: list[Scored] = []
    waiting: list[Scored] = []
    per_cat: dict[str, int] = {}
    for s in ranked:
        if len(taken) >= k:
            break
        cat = s.category or UNKNOWN_CATEGORY
        if per_cat.get(cat, 0) < cap:
            per_cat[cat] = per_cat.get(cat, 0) + 1
            taken.append(s)
        else:
            waiting.append(s)
    if len(taken) < k:
        taken.extend(waiting[: k - len(taken)])
    return taken
