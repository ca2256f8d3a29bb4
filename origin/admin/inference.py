"""Treatment-versus-control inference for one metric: fixed-horizon and always-valid.

Fixed horizon: the difference of means with a normal interval (Newcombe's score interval
for rates), a relative lift (Katz for rates, the delta method otherwise) and a p-value;
with several treatments the p-values are Holm-adjusted and the adjusted interval is
Bonferroni's (level 1 - alpha / treatments).

Always valid: the normal-mixture sequential probability ratio test (mSPRT, Johari, Pekelis
and Walsh 2017) as a confidence sequence. With V the variance of the difference and tau^2
the mixing variance, the mixture likelihood ratio crosses 1/alpha exactly when

    |d| > sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)))

so that half-width around d holds at every look at once: reading the page daily, or every
minute, keeps the chance of ever excluding a true difference at or under alpha. tau^2 is
scaled to the per-shopper variance and tuned to be tightest near ``TUNED_AT`` effective
shoppers (about twice as many per arm).
"""

from __future__ import annotations

import math
from typing import Any

from origin.admin.metrics import Arm, Metric
from origin.admin.stats import lift_ci, newcombe_diff, normal_sf, z_of

__all__ = ["POWER", "TUNED_AT", "compare", "confidence_sequence", "planning"]

TUNED_AT = 2_000  # effective sample size n_t n_c / (n_t + n_c) where the sequence is tightest
POWER = 0.8


def confidence_sequence(d: float, var: float, n_eff: float, alpha: float) -> tuple[float, float]:
    """The mSPRT confidence sequence for a difference ``d`` with variance ``var``."""
    if var <= 0 or n_eff <= 0:
        return d, d
    log_a = math.log(1 / alpha)
    rho = (2 * log_a + math.log(1 + 2 * log_a)) / TUNED_AT
    tau2 = rho * var * n_eff  # rho times the per-shopper variance of the difference
    half = math.sqrt(var * (var + tau2) / tau2 * (2 * log_a + math.log((var + tau2) / var)))
    return d - half, d + half


def _rates(metric: Metric, t: Arm, c: Arm, z: float) -> dict[str, Any]:
    k_t, k_c = (t.conversions, c.conversions) if metric.key == "conversion" else (t.carts, c.carts)
    d, lo, hi = newcombe_diff(k_t, t.n, k_c, c.n, z)
    pooled = (k_t + k_c) / (t.n + c.n)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / t.n + 1 / c.n))
    p = 1.0 if se0 == 0 else 2 * normal_sf(abs(d) / se0)
    lift = lift_ci(k_t, t.n, k_c, c.n, z)
    assert lift is not None  # both arms have shoppers here
    # Sequential variance from (k + 1) / (n + 2): never zero, so two arms without a single
    # conversion between them cannot look certain.
    a_t, a_c = (k_t + 1) / (t.n + 2), (k_c + 1) / (c.n + 2)
    var = a_t * (1 - a_t) / t.n + a_c * (1 - a_c) / c.n
    return {"d": d, "lo": lo, "hi": hi, "p": p, "rel": lift[0], "rel_ci": [lift[1], lift[2]],
            "var": var}  # fmt: skip


def _means(metric: Metric, t: Arm, c: Arm, z: float) -> dict[str, Any]:
    (m_t, v_t), (m_c, v_c) = metric.estimate(t) or (0, 0), metric.estimate(c) or (0, 0)
    if (v_t == 0) != (v_c == 0):
        # One arm without spread (no buyer at all): its own variance would claim certainty,
        # so both arms take the pooled per-shopper variance, as under "no difference".
        pooled = metric.estimate(t.plus(c))
        unit = pooled[1] * (t.n + c.n) if pooled else 0.0
        v_t, v_c = unit / t.n, unit / c.n
    d, var = m_t - m_c, v_t + v_c
    se = math.sqrt(var)
    p = (1.0 if d == 0 else 0.0) if se == 0 else 2 * normal_sf(abs(d) / se)
    rel = rel_ci = None
    if m_c > 0:  # delta method for m_t / m_c - 1
        rel = m_t / m_c - 1
        se_rel = math.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4)
        # every metric here is a mean of non-negative values: it cannot fall by over 100%
        rel_ci = [max(-1.0, rel - z * se_rel), rel + z * se_rel]
    return {"d": d, "lo": d - z * se, "hi": d + z * se, "p": p, "rel": rel, "rel_ci": rel_ci,
            "var": var}  # fmt: skip


def compare(metric: Metric, t: Arm, c: Arm, alpha: float, family: int) -> dict[str, Any] | None:
    """Treatment ``t`` against control ``c`` on ``metric``; None while either is undefined.

    ``family`` is the number of treatments compared with control (for the adjusted
    interval and the sequential level); ``p_adjusted`` is filled in by the caller (Holm)."""
    mt, mc = metric.estimate(t), metric.estimate(c)
    if mt is None or mc is None:
        return None
    z = z_of(alpha)
    r = (_rates if metric.kind == "proportion" else _means)(metric, t, c, z)
    za = z_of(alpha / family)
    n_eff = t.n * c.n / (t.n + c.n)
    seq = confidence_sequence(r["d"], r["var"], n_eff, alpha / family)
    return {
        "metric": metric.key,
        "difference": r["d"],
        "ci": [r["lo"], r["hi"]],
        "relative": r["rel"],
        "relative_ci": r["rel_ci"],
        "p_value": r["p"],
        "ci_adjusted": _adjusted(metric, t, c, r, za),
        "sequential": {"ci": list(seq), "significant": not seq[0] <= 0 <= seq[1]},
    }


def _adjusted(metric: Metric, t: Arm, c: Arm, r: dict[str, Any], za: float) -> list[float]:
    if metric.kind == "proportion":
        again = _rates(metric, t, c, za)
        return [again["lo"], again["hi"]]
    se = math.sqrt(r["var"])
    return [r["d"] - za * se, r["d"] + za * se]


def planning(metric: Metric, c: Arm, t_n: int, alpha: float, family: int) -> dict[str, Any]:
    """What the current sample can detect (80% power), and the shoppers per arm needed to
    detect a 5% relative change, both from control's mean and per-shopper variance."""
    mc = metric.estimate(c)
    if mc is None or mc[0] <= 0 or t_n <= 0:
        return {"mde_relative": None, "n_per_arm_for_5pct": None}
    mean, var_mean = mc
    unit_var = var_mean * c.n  # per-shopper variance (per-order-ratio for AOV)
    zz = z_of(alpha / family) + z_of(2 * (1 - POWER))
    mde = zz * math.sqrt(unit_var * (1 / c.n + 1 / t_n)) / mean
    need = math.ceil(2 * zz * zz * unit_var / (0.05 * mean) ** 2)
    return {"mde_relative": mde, "n_per_arm_for_5pct": need}
