"""The experiment metrics, defined in one place: what each means and how its variance is read.

The processor keeps, per experiment, variant and partition, integer sums over exposed
shoppers (``segmenter.aggregates``): ``x`` shoppers, ``c`` converters, ``a`` shoppers who
added to cart, ``o`` orders, ``r`` revenue (cents, uncapped), ``rc`` capped revenue and
``rq`` its square, ``oq`` orders squared and ``ro`` capped revenue times orders, each summed
over shoppers (a shopper's revenue is the sum of their orders, so the variance is over
shoppers). ``Arm.of`` reads one variant; ``Metric.estimate`` gives a mean and the variance of
that mean, which is all the inference needs.

>>> arm = Arm.of({"x:a": 4, "c:a": 1, "o:a": 2, "r:a": 3000, "rc:a": 3000, "rq:a": 4500000,
...               "oq:a": 4, "ro:a": 6000}, "a")
>>> METRICS["revenue_per_exposed"].estimate(arm)[0]    # cents per exposed shopper
750.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["METRICS", "Arm", "InconsistentCounts", "Metric"]


class InconsistentCounts(ValueError):
    """The counters cannot come from real shoppers (say more converters than exposed)."""


@dataclass(frozen=True, slots=True)
class Arm:
    """One variant's sums over its exposed shoppers (integers as the processor keeps them)."""

    n: int  # exposed shoppers
    conversions: int
    carts: int
    orders: int
    revenue: int  # cents, uncapped
    rev: int  # cents, each shopper's revenue capped
    rev_sq: int
    orders_sq: int
    rev_orders: int
    moments: bool = True  # False for counters written before the processor kept them

    @classmethod
    def of(cls, counts: Mapping[str, float], variant: str) -> Arm:
        """The variant's sums from the merged counters."""

        def get(kind: str) -> int:
            return int(counts.get(f"{kind}:{variant}", 0))

        # Every order adds to ``oq``: orders without it are from an older processor.
        moments = f"oq:{variant}" in counts or get("o") == 0
        x, c, a, o, r, rc, rq, oq, ro = (
            get(k) for k in ("x", "c", "a", "o", "r", "rc", "rq", "oq", "ro")
        )
        return cls(x, c, a, o, r, rc, rq, oq, ro, moments)

    def plus(self, other: Arm) -> Arm:
        """Both arms' shoppers together (the pooled sums)."""
        return Arm(
            self.n + other.n, self.conversions + other.conversions, self.carts + other.carts,
            self.orders + other.orders, self.revenue + other.revenue, self.rev + other.rev,
            self.rev_sq + other.rev_sq, self.orders_sq + other.orders_sq,
            self.rev_orders + other.rev_orders, self.moments and other.moments,
        )  # fmt: skip

    def problems(self, variant: str) -> list[str]:
        """Why these sums cannot describe real shoppers (empty when they can); never clamped."""
        out = [f"{variant}: {what} is negative ({v})" for what, v in self._named() if v < 0]
        if out:
            return out
        if self.conversions > self.n:
            out.append(f"{variant}: {self.conversions} converters but {self.n} exposed shoppers")
        if self.carts > self.n:
            out.append(f"{variant}: {self.carts} shoppers added to cart but {self.n} exposed")
        if self.conversions > self.orders:
            out.append(f"{variant}: {self.conversions} converters but {self.orders} orders")
        if not self.moments:
            return out
        # A variance is never negative: n * sum(y^2) >= (sum y)^2, and the covariance matrix
        # of (revenue, orders) is positive semi-definite. Exact in integers.
        v_r = self.n * self.rev_sq - self.rev * self.rev
        v_o = self.n * self.orders_sq - self.orders * self.orders
        cov = self.n * self.rev_orders - self.rev * self.orders
        if v_r < 0 or v_o < 0 or cov * cov > v_r * v_o:
            out.append(f"{variant}: the revenue and order sums imply a negative variance")
        return out

    def _named(self) -> list[tuple[str, int]]:
        return [
            ("exposed shoppers", self.n), ("converters", self.conversions),
            ("cart shoppers", self.carts), ("orders", self.orders),
            ("revenue", self.revenue), ("capped revenue", self.rev),
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric's name, what it means, its unit and how its mean and variance are read."""

    key: str
    name: str
    definition: str
    unit: str  # "rate" (a share of shoppers) or "currency" (minor units in, major units out)
    kind: str  # "proportion", "mean" (per exposed shopper) or "ratio" (delta method)

    def estimate(self, arm: Arm) -> tuple[float, float] | None:
        """(mean, variance of the mean) for ``arm``, or None when it is undefined."""
        if arm.n <= 0:
            return None
        if self.kind == "proportion":
            k = arm.conversions if self.key == "conversion" else arm.carts
            p = k / arm.n
            return p, p * (1 - p) / arm.n
        if not arm.moments:
            return None
        if self.kind == "mean":
            mean = arm.rev / arm.n
            var = (arm.rev_sq - arm.rev * mean) / (arm.n - 1) if arm.n > 1 else 0.0
            return mean, var / arm.n
        return _ratio(arm)


def _ratio(arm: Arm) -> tuple[float, float] | None:
    """Average order value sum(rev) / sum(orders), per shopper as the unit: the delta method
    var(R/O) ~ (var_r - 2 q cov + q^2 var_o) / (n mean_o^2), q = R/O."""
    if arm.orders <= 0:
        return None
    n = arm.n
    q = arm.rev / arm.orders
    mean_o = arm.orders / n
    if n < 2:
        return q, 0.0
    var_r = (arm.rev_sq - arm.rev * arm.rev / n) / (n - 1)
    var_o = (arm.orders_sq - arm.orders * arm.orders / n) / (n - 1)
    cov = (arm.rev_orders - arm.rev * arm.orders / n) / (n - 1)
    return q, max(0.0, var_r - 2 * q * cov + q * q * var_o) / (n * mean_o * mean_o)


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(
            "conversion", "Conversion",
            "share of exposed shoppers who bought at least once after their first exposure",
            "rate", "proportion",
        ),
        Metric(
            "revenue_per_exposed", "Revenue per exposed shopper",
            "revenue from purchases after the first exposure, per exposed shopper (buyers and "
            "non-buyers alike); each shopper's revenue is capped at the revenue cap",
            "currency", "mean",
        ),
        Metric(
            "average_order_value", "Average order value",
            "capped revenue after the first exposure divided by the orders placed after it "
            "(a ratio of per-shopper sums: interval by the delta method)",
            "currency", "ratio",
        ),
        Metric(
            "add_to_cart", "Add-to-cart rate",
            "share of exposed shoppers who added an item to the cart after their first exposure",
            "rate", "proportion",
        ),
    )
}  # fmt: skip
