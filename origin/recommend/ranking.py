"""The pure core of recommendations: candidates, scores, filters and per-category diversity.

No I/O: ``rank(inputs, strategy, k, category_cap)`` is a function of its arguments, so every
rule is tested without Redis. A rail blends three kinds of signal, each weighted by the
route's strategy (which an A/B variation may change by name):

    due again     ``repeat``: the repurchase score (``repurchase``: the share of the
                  shopper's baskets holding the item, lifted or lowered by how due it is),
                  over the shopper's largest
    goes with     ``recency``: item-item similarity to what the shopper viewed and bought
    discovery     ``base`` (the segment's list), ``category_boost`` (the shopper's category
                  affinity), ``popularity`` (global)

"Goes with" and "due again" are mixed by how much the shop's shoppers repeat themselves:
the ``recency`` weight is scaled by the odds ``(1 - r) / r``, ``r`` the shopper's share of
purchases that repeat an item they bought before, shrunk toward the shop's (measured by the
list build, ``segmenter.lists.ShopStats``; ``P13N_REPEAT_SHARE`` fixes it) with the weight of
``SHOP_PRIOR_PURCHASES`` purchases. A grocery (about half of all purchases are repeats) keeps
the route's weights; a fashion shop (one in ten) leads with what goes with what the shopper
viewed and bought. Until a share is measured, ``DEFAULT_REPEAT_SHARE``: even odds, the weights
as they are. A variation's ``recency`` is the weight at even odds, scaled the same way.

An item's reason is its largest weighted signal, said the way a shopper reads it::

    "due again: you buy this every ~9 days"   (own interval known, needed by the next visit)
    "you buy this often"   (own interval known, not due yet)   "buy again"   (bought once)
    "viewed or bought together with SKU-12"   "popular in your segment"   "popular"
    "from a category you like"

Items due again are the shopper's own list, so the per-category cap does not push them out;
it spreads the discovery items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from cache_keys.wire import MerchRule, apply_rules
from cache_keys.wire import Row as RuleRow
from origin.catalog_records import CatalogEntry
from origin.recommend.caches import ListView
from origin.recommend.explore import (
    Pick,
    ShopItems,
    fresh_picks,
    picks_per_basket,
    shop_picks,
)
from origin.recommend.features import Features
from origin.recommend.repurchase import Due, due_scores

__all__ = [
    "DEFAULT_REPEAT_SHARE",
    "ROUTE_STRATEGIES",
    "Inputs",
    "Scored",
    "Strategy",
    "buy_again",
    "diversify",
    "merchandise",
    "rank",
    "repeat_odds",
    "shop_repeat_share",
]

DEFAULT_REPEAT_SHARE = 0.5  # not measured yet: even odds, the route's weights unchanged
SHOP_PRIOR_PURCHASES = 30.0  # the shop's share weighs like this many of the shopper's purchases
MIN_SHARE = 0.02  # keeps the odds finite (a shop or shopper that never or always repeats)
UNKNOWN_CATEGORY = "\x00unknown"  # one bucket for the cap; never a reason to drop an item
T = TypeVar("T")
# (segment, goes-with, due, affinity, popular) weighted signals
Signals = tuple[float, float, float, float, float]
# (-score, item, category, signals)
Row = tuple[float, str, str, Signals]


@dataclass(frozen=True, slots=True)
class Strategy:
    """Signal weights (the home rail's by default); a variation's ``weights`` override them."""

    base: float = 0.15
    category_boost: float = 0.1
    popularity: float = 0.05
    recency: float = 0.3
    price: float = 0.0
    repeat: float = 1.0

    @classmethod
    def from_weights(cls, weights: Mapping[str, float], route: str = "home") -> Strategy:
        """The route's defaults overridden by the names this strategy knows (others are the
        edge's)."""
        names = {f.name for f in fields(cls)}
        known = {k: float(v) for k, v in weights.items() if k in names}
        return replace(ROUTE_STRATEGIES.get(route, cls()), **known)


# Per route: home leads with what is due, product and cart pages with what goes with them.
ROUTE_STRATEGIES = {
    "home": Strategy(),
    "pdp": Strategy(base=0.3, category_boost=0.2, popularity=0.1, recency=1.0, repeat=0.2),
    "cart": Strategy(base=0.3, category_boost=0.2, popularity=0.1, recency=1.0, repeat=0.4),
}


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
    # neighbour -> the shopper's item it goes with most (for the reason)
    covis_source: Mapping[str, str] = field(default_factory=dict)
    segment: ListView = field(default_factory=ListView)
    popular: ListView = field(default_factory=ListView)
    catalog: Mapping[str, CatalogEntry | None] = field(default_factory=dict)
    mask: frozenset[str] = frozenset()
    repeat_share: float = DEFAULT_REPEAT_SHARE  # the shop's (``shop_repeat_share``)
    shop_items: ShopItems = field(default_factory=ShopItems)  # the shop's purchases per item
    recent_weight: float = 0.0  # how much the repurchase rate follows recent baskets


def shop_repeat_share(setting: float, measured: float | None) -> float:
    """The shop's repeat share the ranking uses: the setting when set (above 0), else the
    list build's measure, else ``DEFAULT_REPEAT_SHARE``."""
    if setting > 0:
        return setting
    return DEFAULT_REPEAT_SHARE if measured is None else measured


def repeat_odds(bought: Mapping[str, tuple[int, int, int, int]], shop_share: float) -> float:
    """``(1 - r) / r``: ``r`` the shopper's share of purchases that repeat an item, shrunk
    toward ``shop_share`` with the weight of ``SHOP_PRIOR_PURCHASES`` purchases."""
    purchases = sum(v[3] for v in bought.values())
    repeats = purchases - len(bought)
    r = (repeats + SHOP_PRIOR_PURCHASES * shop_share) / (purchases + SHOP_PRIOR_PURCHASES)
    r = min(max(r, MIN_SHARE), 1 - MIN_SHARE)
    return (1 - r) / r


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


def _category(s: Any) -> str:
    return str(s.category)


def _reason(inp: Inputs, item: str, sig: Signals, due: Due | None) -> str:
    seg, cov, rep, aff, _ = sig
    best = max(sig)
    if rep == best and due is not None:
        if due.timely:
            return f"due again: you buy this every ~{round(due.cycle_days)} days"
        return "you buy this often" if due.own else "buy again"
    if cov == best and item in inp.covis_source:
        return f"viewed or bought together with {inp.covis_source[item]}"
    if seg == best:
        return "popular in your segment"
    if aff == best:
        return "from a category you like"
    return "popular"


def _dues(inp: Inputs) -> dict[str, Due]:
    feats = inp.features
    return due_scores(feats.bought, lambda i: _info(inp, i)[0], inp.now_ms, feats.baskets,
                      pif=feats.pif, recent_weight=inp.recent_weight)  # fmt: skip


def rank(inp: Inputs, strategy: Strategy, k: int, category_cap: int) -> list[Scored]:
    """The top ``k`` items for the shopper, diversified, each with its reason."""
    feats = inp.features
    seg, pop = inp.segment.scores, inp.popular.scores
    cov = _normalized(inp.covis)
    aff = _normalized(feats.affinity)
    dues = _dues(inp)
    top_due = max((d.score for d in dues.values()), default=0.0) or 1.0
    st = strategy
    goes_with = st.recency * repeat_odds(feats.bought, inp.repeat_share)
    ranked: list[Row] = []
    prices: dict[str, float] = {}
    for item in {**seg, **pop, **cov, **dues}:
        if item in feats.cart or item in inp.mask:
            continue
        cat, price, in_stock, durable = _info(inp, item)
        if not in_stock or (durable and item in feats.bought):
            continue
        due = dues.get(item)
        s_seg, s_cov = st.base * seg.get(item, 0.0), goes_with * cov.get(item, 0.0)
        s_rep = st.repeat * (due.score / top_due if due else 0.0)
        s_pop = st.popularity * pop.get(item, 0.0)
        s_aff = st.category_boost * aff.get(cat, 0.0)
        total = s_seg + s_cov + s_rep + s_aff + s_pop
        prices[item] = price
        ranked.append((-total, item, cat, (s_seg, s_cov, s_rep, s_aff, s_pop)))
    if st.price and prices:
        top = max(prices.values()) or 1.0
        ranked = [(t - st.price * prices[i] / top, i, c, s) for t, i, c, s in ranked]
    ranked.sort()
    return _top(inp, ranked, k, category_cap, dues)


def _row_category(row: Row) -> str:
    sig = row[3]
    if sig[2] > 0 and sig[2] == max(sig):  # due again: the shopper's own list, never capped
        return ""
    return row[2]


def _top(inp: Inputs, ranked: list[Row], k: int, cap: int, dues: dict[str, Due]) -> list[Scored]:
    """Diversify rows; reasons are worked out only for the items that make the answer."""
    rows = diversify(ranked, k, cap, category=_row_category, exempt="")
    return [Scored(i, round(-t, 6), _reason(inp, i, s, dues.get(i)), c) for t, i, c, s in rows]


def buy_again(inp: Inputs, k: int, category_cap: int) -> list[Scored]:
    """What the shopper most likely buys now: their own repurchasable items by the repurchase
    score, each plus its chance of a fresh pick (``explore``), with the items they never
    bought that such a pick makes likely."""
    feats = inp.features
    dues = _dues(inp)
    picks = _picks(inp, k)
    ranked: list[Row] = []
    for item, due in dues.items():
        cat, _, in_stock, durable = _info(inp, item)
        if item in feats.cart or item in inp.mask or not in_stock or durable:
            continue
        pick = picks.pop(item, None)
        score = due.score + (pick.chance if pick else 0.0)
        ranked.append((-score, item, cat, (0.0, 0.0, score, 0.0, 0.0)))
    for item, pick in picks.items():
        if item not in feats.bought and item not in feats.cart:
            # the list it came from, for the reason (its chance may be 0: another category)
            sig = (1.0, 0.0, 0.0, 0.0, 0.0) if pick.segment else (0.0, 0.0, 0.0, 0.0, 1.0)
            ranked.append((-pick.chance, item, pick.category, sig))
    # equal scores (items bought once say nothing of timing): what other shoppers buy most
    # (an item many buy is one more often bought again), then the most recent purchase
    pop = inp.shop_items.purchases or inp.popular.scores

    def order(row: Row) -> tuple[float, float, int, str]:
        return (row[0], -pop.get(row[1], 0.0), -feats.bought.get(row[1], (0, 0))[1], row[1])

    ranked.sort(key=order)
    return _top(inp, ranked, k, category_cap, dues)


def _picks(inp: Inputs, k: int) -> dict[str, Pick]:
    """Fresh-pick chances of the items the shopper could buy (at least ``k`` when the lists
    hold them)."""
    feats = inp.features
    per_cat: dict[str, float] = {}
    shop = inp.shop_items.share
    for item, (_, _, _, times) in feats.bought.items():
        cat = _info(inp, item)[0] or shop.get(item, ("",))[0]
        per_cat[cat] = per_cat.get(cat, 0.0) + times

    def skip(item: str) -> bool:
        _, _, in_stock, durable = _info(inp, item)
        return item in inp.mask or not in_stock or durable

    baskets = max(feats.baskets, *(v[3] for v in feats.bought.values()), 0)
    per_basket = picks_per_basket(len(feats.bought), baskets)
    if not inp.shop_items:
        return fresh_picks(per_cat, per_basket, inp.segment, inp.popular, skip)
    # the shop's shares reach every item it sold; the popular list fills places left over
    # (only read when they are fewer than k: its items would rank last, at chance 0)
    picks = shop_picks(per_cat, per_basket, inp.shop_items, feats.bought, skip)
    if len(picks) < k:
        filler = fresh_picks(per_cat, per_basket, ListView(), inp.popular, skip)
        picks = {**filler, **picks}
    return picks


def diversify(
    ranked: Iterable[T],
    k: int,
    cap: int,
    category: Callable[[T], str] = _category,
    exempt: str | None = None,
) -> list[T]:
    """At most ``cap`` items per category in the top ``k``, never fewer than ``k`` items
    while candidates remain: items over the cap wait and fill any remaining places in order.

    Unknown categories share one bucket for the cap's bookkeeping only; items whose category
    is ``exempt`` are never capped.
    """
    taken: list[T] = []
    waiting: list[T] = []
    per_cat: dict[str, int] = {}
    for s in ranked:
        if len(taken) >= k:
            break
        cat = category(s)
        if exempt is not None and cat == exempt:
            taken.append(s)
            continue
        cat = cat or UNKNOWN_CATEGORY
        n = per_cat.get(cat, 0)
        if n < cap:
            per_cat[cat] = n + 1
            taken.append(s)
        else:
            waiting.append(s)
    if len(taken) < k:
        taken.extend(waiting[: k - len(taken)])
    return taken


def merchandise(
    ranked: Iterable[Scored], rules: tuple[MerchRule, ...], k: int, excluded: frozenset[str]
) -> list[Scored]:
    """``ranked`` (the top ``pool_size(k, rules)``) with the live merchandising ``rules``
    applied by the function every edge applies (``cache_keys.wire.apply_rules``)."""
    rows = [RuleRow(s.item, s.score, s.reason, s.category) for s in ranked]
    return [Scored(*r) for r in apply_rules(rows, rules, k=k, excluded=excluded)]
