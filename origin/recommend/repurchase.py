"""The repurchase model: how likely a shopper buys one of their own items again now (pure).

For each item the shopper bought: their own mean interval between purchases, shrunk toward a
category prior (the shopper's pooled interval over their items of that category, else over all
their items, else ``DEFAULT_CYCLE_DAYS``). The time to the next need is Gamma(2) with that mean;
whether the item is a habit at all is uncertain (bought once, or dropped): prior ``rho`` (the
shopper's share of repeated items), updated by each repeat and by the time already waited::

    p = pi * (S(t - w) - S(t)) / (pi * S(t - w) + 1 - pi)

``t`` the time since the last purchase, ``w`` the shopper's visit gap (the need arose since the
last visit), ``S`` the Gamma(2) survival. Milk bought every ~7 days, last 8 days ago: high; a
kettle bought once: low; bread bought every week until two months ago: low again.

What ranks, ``Due.score``, blends that timing with the shopper's basket-decayed item frequency
(TIFU-KNN's personal item frequency, normalized by the shopper's largest): frequency is what
next-basket studies on real grocery data find hard to beat, timing what lifts an item whose
need has come back. Equal shares: a stated default, not fitted to a data set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["DAY_MS", "FREQUENCY_SHARE", "Due", "due_scores"]

DAY_MS = 86_400_000
DEFAULT_CYCLE_DAYS = 14.0  # no interval known at all: between weekly and monthly
PRIOR_INTERVALS = 2.0  # the category prior weighs like two observed intervals
GAMMA_SHAPE = 2.0  # needs come back fairly regularly (an exponential would be 1)
MIN_GAP_DAYS, MAX_GAP_DAYS = 1.0, 30.0
FREQUENCY_SHARE = 0.5  # of the score; the rest is the timing probability


@dataclass(frozen=True, slots=True)
class Due:
    """One item's repurchase estimate."""

    p: float  # probability it is bought at this visit
    cycle_days: float  # expected interval (own, shrunk toward the prior)
    own: bool  # the shopper's own interval is known (bought at least twice)
    freq: float = 0.0  # basket-decayed frequency over the shopper's largest, in [0, 1]

    @property
    def score(self) -> float:
        """What ranks: frequency and timing blended."""
        return FREQUENCY_SHARE * self.freq + (1 - FREQUENCY_SHARE) * self.p

    @property
    def timely(self) -> bool:
        """Timing, not frequency, is the larger part of the score (the reason says so)."""
        return self.own and (1 - FREQUENCY_SHARE) * self.p >= FREQUENCY_SHARE * self.freq


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
    pif: Mapping[str, float] | None = None,
) -> dict[str, Due]:  # fmt: skip
    """Every bought item's estimate at ``now_ms`` (see the module docstring); ``pif`` the
    basket-decayed frequencies (purchase counts when not known)."""
    if not bought:
        return {}
    freq = dict(pif) if pif else {i: float(v[3]) for i, v in bought.items()}
    top_freq = max(freq.values(), default=0.0) or 1.0
    rows = {i: (v[1], v[2], v[3]) for i, v in bought.items()}
    overall = _pooled(list(rows.values())) or DEFAULT_CYCLE_DAYS
    by_cat: dict[str, list[tuple[int, int, int]]] = {}
    for item, row in rows.items():
        by_cat.setdefault(category(item), []).append(row)
    prior = {c: _pooled(r) or overall for c, r in by_cat.items()}
    own_means = [(last - first) / (n - 1) / DAY_MS for last, first, n in rows.values() if n > 1]
    gap = min(max(min(own_means, default=7.0), MIN_GAP_DAYS), MAX_GAP_DAYS)
    rho = (sum(1 for _, _, n in rows.values() if n > 1) + 1) / (len(rows) + 2)
    out: dict[str, Due] = {}
    for item, (last, first, n) in rows.items():
        own = (last - first) / DAY_MS
        cycle = (own + PRIOR_INTERVALS * prior[category(item)]) / (n - 1 + PRIOR_INTERVALS)
        cycle = max(cycle, MIN_GAP_DAYS)
        t = max(0.0, (now_ms - last) / DAY_MS)
        pi = (n - 1 + 2 * rho) / (n + 1)
        before, at = _survival(t - gap, cycle), _survival(t, cycle)
        p = pi * (before - at) / (pi * before + 1 - pi)
        out[item] = Due(p, cycle, n > 1, freq.get(item, 0.0) / top_freq)
    return out
