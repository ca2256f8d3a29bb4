"""Statistics for experiment results (pure, standard library): tails, SRM, proportions.

>>> round(chi2_sf(3.841458820694124, 1), 4)     # the 95% point of chi-square(1)
0.05
>>> srm_p_value([5000, 5000], [0.5, 0.5])
1.0
>>> round(srm_p_value([49, 1], [0.999, 0.001]), 4)   # tiny expected count: exact binomial
0.0488
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

__all__ = [
    "EXACT_BELOW",
    "Z_95",
    "binom_two_sided",
    "chi2_sf",
    "holm",
    "lift_ci",
    "newcombe_diff",
    "normal_sf",
    "srm_p_value",
    "wilson",
    "z_of",
]

Z_95 = 1.959963984540054
# SRM: below this expected count in any arm the chi-square approximation is not trusted.
EXACT_BELOW = 5.0
_N = NormalDist()
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


def normal_sf(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return _N.cdf(-z)


def z_of(alpha: float) -> float:
    """The two-sided critical value: z with P(|Z| >= z) = alpha."""
    return _N.inv_cdf(1 - alpha / 2)


def binom_two_sided(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial p-value: the mass of outcomes no likelier than ``k``."""
    if p <= 0 or p >= 1:
        return 1.0 if k == (0 if p <= 0 else n) else 0.0
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(n + 1)
    ]  # fmt: skip
    cut = logs[k] + 1e-7  # relative tolerance, as R's binom.test
    return min(1.0, sum(math.exp(v) for v in logs if v <= cut))


def srm_p_value(observed: Sequence[int], weights: Sequence[float]) -> float | None:
    """Sample-ratio p-value of exposure counts against the planned (positive) weights.

    Chi-square goodness of fit, unless an expected count is below ``EXACT_BELOW``: then the
    exact binomial test (two arms), or for more arms each arm's exact binomial test against
    the rest, Bonferroni-combined (exact multinomial enumeration grows as n^(k-1))."""
    active = [(o, w) for o, w in zip(observed, weights, strict=True) if w > 0]
    total = sum(o for o, _ in active)
    if total == 0 or len(active) < 2:
        return None
    wsum = sum(w for _, w in active)
    expected = [total * w / wsum for _, w in active]
    if min(expected) < EXACT_BELOW:
        if len(active) == 2:
            return binom_two_sided(active[0][0], total, active[0][1] / wsum)
        worst = min(binom_two_sided(o, total, w / wsum) for o, w in active)
        return min(1.0, worst * len(active))
    stat = sum((o - e) ** 2 / e for (o, _), e in zip(active, expected, strict=True))
    return chi2_sf(stat, len(active) - 1)


def wilson(k: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (defined at 0 and at n successes)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_diff(
    k_t: int, n_t: int, k_c: int, n_c: int, z: float = Z_95
) -> tuple[float, float, float]:  # fmt: skip
    """p_t - p_c with Newcombe's hybrid score interval (method 10): honest at 0% and 100%."""
    p_t, p_c = k_t / n_t, k_c / n_c
    l1, u1 = wilson(k_t, n_t, z)
    l2, u2 = wilson(k_c, n_c, z)
    d = p_t - p_c
    lo = d - math.sqrt((p_t - l1) ** 2 + (u2 - p_c) ** 2)
    hi = d + math.sqrt((u1 - p_t) ** 2 + (p_c - l2) ** 2)
    return d, lo, hi


def lift_ci(
    conv_t: int, n_t: int, conv_c: int, n_c: int, z: float = Z_95
) -> tuple[float | None, float, float] | None:  # fmt: skip
    """Relative lift of the treatment's conversion rate over control, with an interval.

    Katz's log risk-ratio interval; when a cell of the 2x2 table is empty (no conversions,
    or everyone converting) 0.5 is added to each cell, so the interval stays honest instead
    of vanishing or collapsing to a point. The lift itself is None when control has no
    conversions (the ratio is undefined); the whole result is None without shoppers."""
    if n_t <= 0 or n_c <= 0 or not (0 <= conv_t <= n_t and 0 <= conv_c <= n_c):
        return None
    lift = conv_t / n_t / (conv_c / n_c) - 1 if conv_c else None
    a, b = float(conv_t), float(conv_c)
    m_t, m_c = float(n_t), float(n_c)
    if 0 in (conv_t, conv_c) or conv_t == n_t or conv_c == n_c:
        a, b, m_t, m_c = a + 0.5, b + 0.5, m_t + 1, m_c + 1
    log_ratio = math.log(a / m_t) - math.log(b / m_c)
    se = math.sqrt(1 / a - 1 / m_t + 1 / b - 1 / m_c)
    return lift, math.exp(log_ratio - z * se) - 1, math.exp(log_ratio + z * se) - 1


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control for several arms)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out
