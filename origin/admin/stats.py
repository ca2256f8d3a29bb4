"""Statistics for experiment results (pure, standard library).

>>> round(chi2_sf(3.841458820694124, 1), 4)     # the 95% point of chi-square(1)
0.05
>>> srm_p_value([5000, 5000], [0.5, 0.5])
1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Z_95", "chi2_sf", "lift_ci", "srm_p_value"]

Z_95 = 1.959963984540054
_EPS = 1e-15
_MAX_ITER = 500


def _gamma_q(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) (series below a + 1, continued fraction above)."""
    if x <= 0:
        return 1.0
    log_pre = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(_MAX_ITER):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_pre))
    # Lentz's continued fraction
    b = x + 1 - a
    c = 1 / 1e-300
    d = 1 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            break
    return min(1.0, math.exp(log_pre) * h)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square with ``df`` degrees of freedom."""
    return _gamma_q(df / 2, x / 2)


def srm_p_value(observed: Sequence[int], weights: Sequence[float]) -> float | None:
    """Chi-square goodness-of-fit p-value of exposure counts against the planned weights."""
    total = sum(observed)
    active = [(o, w) for o, w in zip(observed, weights, strict=True) if w > 0]
    if total == 0 or len(active) < 2:
        return None
    wsum = sum(w for _, w in active)
    stat = sum((o - total * w / wsum) ** 2 / (total * w / wsum) for o, w in active)
    return chi2_sf(stat, len(active) - 1)


def lift_ci(conv_t: int, n_t: int, conv_c: int, n_c: int) -> tuple[float, float, float] | None:
    """Relative lift of the treatment's conversion rate over control, with a 95% interval.

    The interval is Katz's log risk-ratio interval; None when a rate is 0 or undefined.
    """
    if min(conv_t, conv_c) <= 0 or n_t <= 0 or n_c <= 0:
        return None
    p_t, p_c = conv_t / n_t, conv_c / n_c
    ratio = p_t / p_c
    se = math.sqrt(max(0.0, 1 / conv_t - 1 / n_t + 1 / conv_c - 1 / n_c))
    lo, hi = ratio * math.exp(-Z_95 * se), ratio * math.exp(Z_95 * se)
    return ratio - 1, lo - 1, hi - 1
