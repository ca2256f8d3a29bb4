"""The repurchase model: how likely a shopper buys one of their own items again now (pure).

Two parts, multiplied (``Due.score``)::

    rate   the share of the shopper's baskets that held the item (purchases / baskets): how
           often it is bought at all, the "what you usually buy" that next-basket studies on
           real grocery data find hard to beat; blended with the share of recent baskets as
           much as the shop's own last baskets say (``segmenter.recency``: habits that change)
    lift   how much more (or less) likely a purchase is at this visit than on average, from
           timing: the probability the need came back since the shopper's last visit over
           the average probability for a window that long; trusted in proportion to the
           intervals the shopper showed for the item (none when bought once: lift 1)

Timing: the shopper's own mean interval for the item, shrunk toward a category prior (the
shopper's pooled interval over their items of that category, else over all their items, else
``DEFAULT_CYCLE_DAYS``). The time to the next need is Gamma(2) with that mean; whether the item
is a habit at all is uncertain (bought once, or dropped): prior ``rho`` (the shopper's share of
repeated items), updated by each repeat and by the time already waited::

    p = pi * (S(t - w) - S(t)) / (pi * S(t - w) + 1 - pi)      lift = p / min(1, w / cycle)

``t`` the time since the item's last purchase, ``w`` the time since the shopper's last
purchase of anything (the need arose since that visit), ``S`` the Gamma(2) survival. Milk
bought every ~7 days, last 8 days ago: lifted; bought yesterday: lowered well below its rate;
bread bought every week until two months ago: lowered (the habit was probably dropped).

Why timing adds little to frequency on the simulated grocery (``ops.shop.history``): recall
at 20 does not see the order within the top 20, and 98-99% of the staples bought at least
twice, due or not, are in the frequency baseline's top 20 anyway; ranking the staples the
generator has due first gains 1.2-1.4% (3,000 items over 120 days), 6% over 60 days (seed
11), most of it from staples bought once, whose interval the shopper never showed (timing
cannot tell them from one-off purchases).
Dividing the lift by the habit prior too (a ratio to the item's average under the model, so
that ``pi`` does not discount every repeat item) moved buy-again by -0.01 to +0.16% where
habits last but by -0.06 to -0.72% where they change (bench/quality.py's two grocery shops,
seeds 11-13): not kept.

Why a basket-decayed frequency enters the rate only as far as the shop learned it: it forgets
lasting habits (an item in one basket of three for months) as fast as it learns new ones, so
it helps only where habits change, which the list build measures (``segmenter.recency``).
Constants are stated defaults, not fitted to a data set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from segmenter.recency import own_rate

__all__ = ["DAY_MS", "MAX_LIFT", "Due", "due_scores"]

DAY_MS = 86_400_000
DEFAULT_CYCLE_DAYS = 14.0  # no interval known at all: between weekly and monthly
PRIOR_INTERVALS = 2.0  # the category prior weighs like two observed intervals
GAMMA_SHAPE = 2.0  # needs come back fairly regularly (an exponential would be 1)
MIN_GAP_DAYS = 1.0
MAX_LIFT = 4.0  # timing multiplies the rate by at most this much


@dataclass(frozen=True, slots=True)
class Due:
    """One item's repurchase estimate."""

    rate: float  # share of the shopper's baskets holding the item, in [0, 1]
    lift: float  # timing's multiplier of the rate (1: no timing information)
    cycle_days: float  # expected interval (own, shrunk toward the prior)
    own: bool  # the shopper's own interval is known (bought at least twice)
    due_in_days: float = 0.0  # expected next need from now (negative: overdue)
    window_days: float = 0.0  # the time since the shopper's last purchase of anything

    @property
    def score(self) -> float:
        """What ranks: the rate, lifted or lowered by how due the item is."""
        return self.rate * self.lift

    @property
    def timely(self) -> bool:
        """Its own interval is known and the next need falls before the shopper's next visit
        (expected one window from now): the reason may quote the interval."""
        return self.own and self.due_in_days <= self.window_days


def _survival(t: float, mean: float) -> float:
    """P(interval > t) for Gamma(shape 2) with this mean."""
    if t <= 0:
        return 1.0
    x = t * GAMMA_SHAPE / mean
    return (1 + x) * math.exp(-x)


def _pooled(rows: list[tuple[int, int, int]]) -> float | None:
    """Mean interval (days) over items bought at least twice: (last, first, purchases) rows."""
    span = sum(last - first for last, first, n in rows if n > 1)
    gaps = sum(n - 1 for _, _, n in rows if n > 1)
    return span / gaps / DAY_MS if gaps and span > 0 else None


def due_scores(
    bought: Mapping[str, tuple[int, int, int, int]], category: Callable[[str], str], now_ms: int,
    baskets: int = 0, *, pif: Mapping[str, float] | None = None, recent_weight: float = 0.0,
) -> dict[str, Due]:  # fmt: skip
    """Every bought item's estimate at ``now_ms`` (see the module docstring); ``baskets`` the
    shopper's purchase baskets (when not known, the most purchases of any one item); ``pif``
    the items' basket-decayed frequencies, blended into the rate by the shop's learned
    ``recent_weight`` (``segmenter.recency.own_rate``; an item without one: its plain rate)."""
    if not bought:
        return {}
    rows = {i: (v[1], v[2], v[3]) for i, v in bought.items()}
    baskets = max(baskets, *(n for _, _, n in rows.values()), 1)
    overall = _pooled(list(rows.values())) or DEFAULT_CYCLE_DAYS
    by_cat: dict[str, list[tuple[int, int, int]]] = {}
    for item, row in rows.items():
        by_cat.setdefault(category(item), []).append(row)
    prior = {c: _pooled(r) or overall for c, r in by_cat.items()}
    last_visit = max(last for last, _, _ in rows.values())
    window = max((now_ms - last_visit) / DAY_MS, MIN_GAP_DAYS)
    rho = (sum(1 for _, _, n in rows.values() if n > 1) + 1) / (len(rows) + 2)
    recent = pif if pif and recent_weight > 0 else {}  # frequency alone: no decayed values
    out: dict[str, Due] = {}
    for item, (last, first, n) in rows.items():
        own = (last - first) / DAY_MS
        cycle = (own + PRIOR_INTERVALS * prior[category(item)]) / (n - 1 + PRIOR_INTERVALS)
        cycle = max(cycle, MIN_GAP_DAYS)
        t = max(0.0, (now_ms - last) / DAY_MS)
        pi = (n - 1 + 2 * rho) / (n + 1)
        before, at = _survival(t - window, cycle), _survival(t, cycle)
        p = pi * (before - at) / (pi * before + 1 - pi)
        trust = (n - 1) / (n - 1 + PRIOR_INTERVALS)
        timing = min(MAX_LIFT, p / min(1.0, window / cycle))
        lift = 1 - trust + trust * timing
        decayed = recent.get(item)
        rate = own_rate(n, decayed, baskets, recent_weight) if decayed else min(1.0, n / baskets)
        out[item] = Due(rate, lift, cycle, n > 1, cycle - t, window)
    return out
