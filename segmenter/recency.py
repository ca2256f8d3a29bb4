"""How much a shop's repurchases follow its shoppers' recent baskets rather than their
all-time frequency, learned from the shop's own last baskets (pure).

The repurchase model's rate (``origin.recommend.repurchase``) is an item's share of the
shopper's baskets. Where habits last (the same staples for months), all-time frequency is
the best guide; where they change (a new brand replaces the old one, a diet, a season),
the recent baskets are. Which holds is a property of the shop, so the list build measures
it instead of a constant deciding::

    rate(w) = (1 - w) * purchases / baskets  +  w * pif / pif_max(baskets)

``pif`` the item's basket-decayed frequency as the processor keeps it (each basket back
weighs ``PIF_DECAY_PER_BASKET`` times less; ``pif_max`` its value for an item in every
basket, so both parts lie in [0, 1]). ``w`` is the one of ``WEIGHTS`` whose ranking of
the shopper's own items finds most of each shopper's last basket (recall at ``LEARN_K``),
the state before that basket rebuilt from what is stored: an item in the last basket (its
``basket`` is the last) had one purchase fewer and ``(pif - 1) / decay`` before it; the
others are as stored, decayed one basket less. A weight above 0 is kept only when it beats
frequency alone by more than chance (``MIN_T``), so a shop without a measurable difference
keeps all-time frequency.

Measured on the simulated grocery (``ops.shop.history``, 300 shoppers over 120 days; own
items' recall on each shopper's last basket with weight 1 over weight 0, and the weight learned
from the basket before it; seeds 11/12/13): where habits last, 1.003/0.992/0.995, learned 0
on all three; where a habit lasts ~60 days (``habit_days``), 1.016/1.018/1.025, learned
0/0/1; ~30 days, 1.056/1.045 (seeds 11/12), learned 1 and 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from segmenter.schema import PIF_DECAY_PER_BASKET

__all__ = ["LEARN_K", "WEIGHTS", "RecencyLearner", "own_rate", "pif_max"]

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
LEARN_K = 20  # a rail's length
LEARN_SHOPPERS_MAX = 2_000  # enough for a stable choice; bounds the build's time
MIN_SHOPPERS = 50  # fewer shoppers with two baskets: nothing is published (frequency)
MIN_BASKETS = 3  # the rebuilt state holds at least two baskets
MIN_T = 2.0  # a recency weight must beat frequency by two standard errors (about 95%)


def pif_max(baskets: int) -> float:
    """The decayed frequency of an item bought in each of ``baskets`` baskets."""
    d = PIF_DECAY_PER_BASKET
    return (1 - d ** max(baskets, 0)) / (1 - d)


def own_rate(purchases: int, pif: float, baskets: int, weight: float) -> float:
    """The blended rate (module docstring) of an item bought ``purchases`` times with decayed
    frequency ``pif`` (as of the shopper's latest basket) by a shopper with ``baskets``."""
    if baskets <= 0:
        return 0.0
    rate = min(1.0, purchases / baskets)
    if weight <= 0:
        return rate
    return (1 - weight) * rate + weight * min(1.0, pif / pif_max(baskets))


# one own item before the shopper's last basket: (rate, recent rate, in the last basket),
# own_rate(w) = rate + w * (recent rate - rate)
_Row = tuple[float, float, bool]
# a shopper: (items in the last basket, own items before it)
_Shopper = tuple[int, list[_Row]]


@dataclass(slots=True)
class RecencyLearner:
    """Collects shoppers' stored purchases (``add``), then picks the weight (``weight``)."""

    shoppers: list[_Shopper] = field(default_factory=list)

    def add(self, baskets: int, bought: Iterable[bytes]) -> None:
        """One shopper: their basket count and ``:bought`` values (malformed ones and the
        older forms without a decayed frequency are skipped)."""
        if baskets < MIN_BASKETS or len(self.shoppers) >= LEARN_SHOPPERS_MAX:
            return
        before: list[tuple[int, float, bool]] = []  # (purchases, pif, in the last basket)
        last = 0
        d = PIF_DECAY_PER_BASKET
        for value in bought:
            parts = value.split(b"|")
            if len(parts) != 6:
                continue
            try:
                times, pif, at = int(parts[3]), float(parts[4]), int(parts[5])
            except ValueError:
                continue
            if at >= baskets:  # bought in the last basket: the state before it
                last += 1
                if times > 1 and pif > 1:
                    before.append((times - 1, (pif - 1) / d, True))
            else:
                before.append((times, pif * d ** (baskets - 1 - at), False))
        if last and any(hit for _, _, hit in before):
            n = baskets - 1
            rows = [(own_rate(t, p, n, 0.0), own_rate(t, p, n, 1.0), h) for t, p, h in before]
            self.shoppers.append((last, rows))

    def weight(self) -> float | None:
        """The weight whose ranking has the best mean recall on the last baskets, if it beats
        frequency alone (weight 0) by more than chance: a paired t statistic over shoppers of
        at least ``MIN_T``. None with too few shoppers."""
        if len(self.shoppers) < MIN_SHOPPERS:
            return None
        recalls = {w: [self._recall(w, *shopper) for shopper in self.shoppers] for w in WEIGHTS}
        best = max(WEIGHTS, key=lambda w: (sum(recalls[w]), -w))
        diffs = [a - b for a, b in zip(recalls[best], recalls[0.0], strict=True)]
        n = len(diffs)
        mean = sum(diffs) / n
        var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
        if mean <= 0 or (var > 0 and mean / math.sqrt(var / n) < MIN_T):
            return 0.0
        return best

    @staticmethod
    def _recall(w: float, last: int, rows: list[_Row]) -> float:
        # ties (items bought as often) by recency, as the reorder baseline breaks them
        ranked = sorted(rows, key=lambda r: (r[0] + w * (r[1] - r[0]), r[1]), reverse=True)
        return sum(hit for _, _, hit in ranked[:LEARN_K]) / last
