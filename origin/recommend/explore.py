"""The chance that a shopper picks an item at their next visit without a habit for it (pure).

Next-basket studies split a basket into repeats (habits: the repurchase model) and picks the
shopper makes afresh (explore). The chance of a fresh pick of one item is::

    picks per basket  x  share of the shopper's purchases in the item's category
                      x  the item's share of its category's purchases in the shop

``picks per basket``: the shopper's distinct items over their baskets, shrunk toward
``PRIOR_PICKS`` (what a basket of ~10 holds that its shopper never bought, when ~60% was
bought before, as on Instacart) with the weight of ``PRIOR_BASKETS`` baskets. The item's
share: of the shop's purchases of each item (``ShopItems``: the list build publishes them,
the snapshot holds them); before the first build, of the segment's list (what shoppers like
them bought and viewed). A list holds 200 items, so most of a large catalog's items (and of
a shopper's own) have no share in it: on the simulated grocery of 6,000 items over 60 days
(bench/quality.py), the shop's purchases raised buy-again from 1.037 to 1.061 x the reorder
baseline (seed 11) and from 1.054 to 1.064 (seed 12); on the default 3,000-item shape they
change it by -0.0003 to +0.003. New items come from the ``FRESH_TAKE`` best sellers of each
category the shopper buys (more never reach a top 20 and would cost time per request). The
popular list only adds the items those lack, at chance 0 (places left over): its recent
window is too short for shares within a category (measured: ranking by them lost recall).
Buy-again adds this chance to an item's repurchase score: an item bought once that many
shoppers buy is likelier again than one nobody buys, and an item never bought yet that the
shop sells a lot in the shopper's own categories may be likelier than either.

>>> from cache_keys.wire import ListItem
>>> seg = ListView.from_items([ListItem("milk-2", 3.0, "dairy"), ListItem("milk-3", 1.0, "dairy"),
...                            ListItem("soap-1", 9.0, "home")])
>>> {i: round(p.chance, 3) for i, p in fresh_picks({"dairy": 3}, 4.0, seg, ListView()).items()}
{'milk-2': 3.0, 'milk-3': 1.0, 'soap-1': 0.0}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from origin.recommend.caches import ListView

__all__ = [
    "FRESH_TAKE",
    "PRIOR_BASKETS",
    "PRIOR_PICKS",
    "Pick",
    "ShopItems",
    "fresh_picks",
    "picks_per_basket",
    "shop_picks",
]

PRIOR_PICKS = 4.0  # items new to the shopper in a basket of ~10 with ~60% bought before
PRIOR_BASKETS = 2.0
FRESH_TAKE = 20  # new items considered per category the shopper buys


@dataclass(frozen=True, slots=True)
class ShopItems:
    """The shop's purchases per item, prepared once per list build: each item's category and
    share of its category's purchases, and each category's best sellers."""

    share: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    purchases: Mapping[str, float] = field(default_factory=dict)
    best: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # top FRESH_TAKE

    @classmethod
    def of(cls, rows: Iterable[tuple[str, float, str]]) -> ShopItems:
        """From ``(item, purchases, category)`` rows (non-positive counts dropped)."""
        kept = sorted(((-float(n), i, c) for i, n, c in rows if n > 0))  # best sellers first
        mass: dict[str, float] = {}
        best: dict[str, list[str]] = {}
        for n, i, c in kept:
            mass[c] = mass.get(c, 0.0) - n
            top = best.setdefault(c, [])
            if len(top) < FRESH_TAKE:
                top.append(i)
        return cls({i: (c, -n / mass[c]) for n, i, c in kept}, {i: -n for n, i, _ in kept},
                   {c: tuple(v) for c, v in best.items()})  # fmt: skip

    def __bool__(self) -> bool:
        return bool(self.share)


@dataclass(frozen=True, slots=True)
class Pick:
    """One list item's fresh-pick chance for this shopper."""

    item: str
    category: str
    chance: float  # expected fresh picks of the item in the next basket (0: popular list)
    segment: bool  # from the segment's list (else the popular list)


def picks_per_basket(distinct_items: int, baskets: int) -> float:
    """Items a basket of this shopper holds that they pick afresh (see the module docstring)."""
    return (distinct_items + PRIOR_PICKS * PRIOR_BASKETS) / (max(baskets, 0) + PRIOR_BASKETS)


def _shares(view: ListView, skip: Callable[[str], bool]) -> dict[str, tuple[str, float]]:
    """item -> (category, its share of the category's score in the list) over kept items."""
    kept = [li for li in view.items if li.score > 0 and not skip(li.item)]
    mass: dict[str, float] = {}
    for li in kept:
        mass[li.category] = mass.get(li.category, 0.0) + li.score
    return {li.item: (li.category, li.score / mass[li.category]) for li in kept}


def fresh_picks(
    bought_by_category: Mapping[str, float], per_basket: float, segment: ListView,
    popular: ListView, skip: Callable[[str], bool] = lambda _: False,
) -> dict[str, Pick]:  # fmt: skip
    """Every list item's chance (not ``skip``ped), by the module docstring;
    ``bought_by_category`` the shopper's purchases per category."""
    total = sum(v for v in bought_by_category.values() if v > 0)
    out: dict[str, Pick] = {}
    for view, from_segment in ((segment, True), (popular, False)):
        for item, (cat, share) in _shares(view, skip).items():
            if item in out:  # the segment's list says it first
                continue
            mix = max(0.0, bought_by_category.get(cat, 0.0)) / total if total else 0.0
            chance = per_basket * mix * share if from_segment else 0.0
            out[item] = Pick(item, cat, chance, from_segment)
    return out


def shop_picks(
    bought_by_category: Mapping[str, float], per_basket: float, shop: ShopItems,
    own: Iterable[str], skip: Callable[[str], bool] = lambda _: False,
) -> dict[str, Pick]:  # fmt: skip
    """The chances of the shopper's ``own`` items and of their categories' best sellers, by
    the shop's shares (see the module docstring); ``skip``ped items left out."""
    total = sum(v for v in bought_by_category.values() if v > 0)
    if not total:
        return {}
    out: dict[str, Pick] = {}
    best = (i for cat in bought_by_category for i in shop.best.get(cat, ()))
    for item in (*own, *best):
        known = shop.share.get(item)
        if known is None or item in out or skip(item):
            continue
        cat, share = known
        mix = max(0.0, bought_by_category.get(cat, 0.0)) / total
        out[item] = Pick(item, cat, per_basket * mix * share, False)
    return out
