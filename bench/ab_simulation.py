"""A/A and A/B simulations of the experiment results math (origin.admin), seeded.

Three questions, each answered by thousands of simulated experiments run through the very
functions the results page uses:

- peeking: A/A tests at 5% conversion looked at every 200 shoppers per arm up to 10,000:
  how many ever declare a winner with the fixed-horizon interval, and with the always-valid
  (mSPRT) confidence sequence (which must stay at or under alpha);
- several arms: A/A with 3 treatments and 20,000 shoppers per arm, any arm significant
  without and with Holm's correction;
- coverage: how often the 95% interval holds the true difference, for conversion (a real
  +20% lift), revenue per exposed shopper and average order value (lognormal order values,
  several orders per buyer, A/A so the true difference is 0).

tests/origin/admin/test_ab_simulation.py runs the same functions with fewer repetitions.
Run: ``.venv/bin/python bench/ab_simulation.py`` (last line: key=value figures).
"""

from __future__ import annotations

import bisect
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Run as `python bench/ab_simulation.py`, this folder comes first on sys.path and
# bench/origin.py would shadow the origin package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from origin.admin.inference import compare  # noqa: E402
from origin.admin.metrics import METRICS, Arm  # noqa: E402
from origin.admin.stats import holm  # noqa: E402

ALPHA = 0.05


class Binomial:
    """Binomial(n, p) draws by inverting a precomputed CDF: one uniform and a bisect each."""

    def __init__(self, n: int, p: float) -> None:
        cdf, acc = [], 0.0
        for k in range(n + 1):
            acc += math.exp(
                math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                + k * math.log(p) + (n - k) * math.log1p(-p)
            )  # fmt: skip
            cdf.append(acc)
        self.cdf = cdf

    def draw(self, rng: random.Random) -> int:
        return min(bisect.bisect_left(self.cdf, rng.random()), len(self.cdf) - 1)


def rate_arm(n: int, k: int) -> Arm:
    """An arm with ``k`` of ``n`` shoppers converting (one order each; no revenue)."""
    return Arm(n, k, 0, k, 0, 0, 0, k, 0)


@dataclass(frozen=True)
class Peeking:
    fixed_any: float  # share of A/A runs the fixed-horizon interval ever called
    fixed_last: float  # ... at the last look only
    sequential_any: float  # share the confidence sequence ever called


def peeking(reps: int, seed: int, step: int = 200, n_max: int = 10_000, p: float = 0.05) -> Peeking:
    """A/A runs looked at every ``step`` shoppers per arm up to ``n_max``."""
    rng = random.Random(seed)
    draws = Binomial(step, p)
    fixed = last = seq = 0
    metric = METRICS["conversion"]
    for _ in range(reps):
        k_t = k_c = n = 0
        f_hit = s_hit = False
        while n < n_max:
            n += step
            k_t += draws.draw(rng)
            k_c += draws.draw(rng)
            cmp = compare(metric, rate_arm(n, k_t), rate_arm(n, k_c), ALPHA, 1)
            assert cmp is not None
            called = not cmp["ci"][0] <= 0 <= cmp["ci"][1]
            f_hit = f_hit or called
            s_hit = s_hit or cmp["sequential"]["significant"]
        fixed += f_hit
        last += called
        seq += s_hit
    return Peeking(fixed / reps, last / reps, seq / reps)


def several_arms(
    reps: int, seed: int, treatments: int = 3, n: int = 20_000, p: float = 0.05
) -> tuple[float, float]:
    """Share of A/A runs where any treatment is significant: (uncorrected, Holm)."""
    rng = random.Random(seed)
    draws = Binomial(n, p)
    metric = METRICS["conversion"]
    raw = adjusted = 0
    for _ in range(reps):
        control = rate_arm(n, draws.draw(rng))
        ps = []
        for _ in range(treatments):
            cmp = compare(metric, rate_arm(n, draws.draw(rng)), control, ALPHA, treatments)
            assert cmp is not None
            ps.append(cmp["p_value"])
        raw += min(ps) < ALPHA
        adjusted += min(holm(ps)) < ALPHA
    return raw / reps, adjusted / reps


def shopper_arm(rng: random.Random, n: int, p_buy: float, cap_cents: int) -> Arm:
    """``n`` shoppers: a buyer places 1 + Geometric orders of lognormal value (cents)."""
    k = orders = revenue = rev = rev_sq = orders_sq = rev_orders = 0
    for _ in range(n):
        if rng.random() >= p_buy:
            continue
        o = 1
        while rng.random() < 0.3:
            o += 1
        cents = sum(round(rng.lognormvariate(3.5, 1.0) * 100) for _ in range(o))
        capped = min(cents, cap_cents)
        k, orders, revenue = k + 1, orders + o, revenue + cents
        rev, rev_sq = rev + capped, rev_sq + capped * capped
        orders_sq, rev_orders = orders_sq + o * o, rev_orders + capped * o
    return Arm(n, k, 0, orders, revenue, rev, rev_sq, orders_sq, rev_orders)


def coverage(reps: int, seed: int, n: int = 2_000) -> dict[str, float]:
    """How often the 95% interval holds the true difference, per metric."""
    rng = random.Random(seed)
    hits = {"conversion": 0, "revenue_per_exposed": 0, "average_order_value": 0}
    conv_t, conv_c = Binomial(n, 0.06), Binomial(n, 0.05)
    for _ in range(reps):
        cmp = compare(METRICS["conversion"], rate_arm(n, conv_t.draw(rng)),
                      rate_arm(n, conv_c.draw(rng)), ALPHA, 1)  # fmt: skip
        assert cmp is not None
        hits["conversion"] += cmp["ci"][0] <= 0.01 <= cmp["ci"][1]
        t, c = shopper_arm(rng, n, 0.1, 100_000), shopper_arm(rng, n, 0.1, 100_000)
        for key in ("revenue_per_exposed", "average_order_value"):
            cmp = compare(METRICS[key], t, c, ALPHA, 1)
            hits[key] += cmp is not None and cmp["ci"][0] <= 0 <= cmp["ci"][1]
    return {k: v / reps for k, v in hits.items()}


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    t0 = time.perf_counter()
    pk = peeking(reps, seed=1)
    raw, adj = several_arms(reps, seed=2)
    cov = coverage(max(200, reps // 4), seed=3)
    print(
        f"A/A peeking, {reps} runs, 50 looks: fixed-horizon {pk.fixed_any:.1%} ever, "
        f"{pk.fixed_last:.1%} at the last look; always-valid {pk.sequential_any:.1%}"
    )
    print(f"3 treatments A/A, {reps} runs: any significant {raw:.1%} uncorrected, {adj:.1%} Holm")
    print("coverage of 95% intervals: " + ", ".join(f"{k} {v:.1%}" for k, v in cov.items()))
    print(f"({time.perf_counter() - t0:.1f} s)\n")
    print(
        f"peek_fixed_fpr={pk.fixed_any:.4f} peek_fixed_last_fpr={pk.fixed_last:.4f} "
        f"peek_sequential_fpr={pk.sequential_any:.4f} arms3_fwer_raw={raw:.4f} "
        f"arms3_fwer_holm={adj:.4f} coverage_conversion={cov['conversion']:.4f} "
        f"coverage_revenue_per_exposed={cov['revenue_per_exposed']:.4f} "
        f"coverage_aov={cov['average_order_value']:.4f} alpha={ALPHA}"
    )


if __name__ == "__main__":
    main()
