"""Cost figures: origin offload and a monthly egress estimate from an edge's traffic counters.

Shared by ``p13n status`` (reading an edge's ``/metrics``) and the origin's console (reading
the counters edges put in their heartbeats): one definition of the math and of the heartbeat's
``traffic`` object, so the two never disagree.

An edge counts, since it started: requests answered and body bytes sent to clients, fetches
and body bytes from the origin. Offload is the share answered without the origin,
``1 - origin / sent``, by requests and by bytes (None before the first request). The monthly
estimate extrapolates bytes per second since the edge started to 30 days and prices them per
GB (10^9 bytes), at ``P13N_EGRESS_PRICE_PER_GB`` (default 0.09, in your currency). Two egress
lines: the edge's to shoppers (what a CDN bills) and the origin's to edges (what the origin's
cloud bills).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_PRICE_PER_GB",
    "PRICE_ENV",
    "TRAFFIC_FIELDS",
    "parse_price",
    "total_costs",
    "traffic_costs",
]

PRICE_ENV = "P13N_EGRESS_PRICE_PER_GB"
DEFAULT_PRICE_PER_GB = 0.09
MONTH_S = 30 * 86_400
GB = 1e9
# The heartbeat's ``traffic`` object: counters since the edge started, and how long ago that
# was by the edge's own clock (so the origin's clock, skewed or not, plays no part).
TRAFFIC_FIELDS = ("requests", "bytes_sent", "origin_fetches", "origin_bytes", "uptime_s")


def parse_price(raw: str | None) -> float:
    """The price per GB from the variable's text (empty: the default); ``ValueError`` names it."""
    raw = (raw or "").strip()
    try:
        price = float(raw) if raw else DEFAULT_PRICE_PER_GB
    except ValueError:
        raise ValueError(f"{PRICE_ENV}={raw!r} is not a number") from None
    if not price >= 0 or price == float("inf"):  # NaN fails ``>=``
        raise ValueError(f"{PRICE_ENV} must be a finite, non-negative number")
    return price


def _share(origin: float, sent: float) -> float | None:
    return round(max(0.0, 1 - origin / sent), 4) if sent else None


def _monthly_gb(n: float, uptime_s: float) -> float:
    return round(n / uptime_s * MONTH_S / GB, 3)


def traffic_costs(t: Mapping[str, float], price: float) -> dict[str, Any]:
    """Offload and monthly egress of one edge from its ``TRAFFIC_FIELDS`` (pure)."""
    uptime = max(1.0, float(t["uptime_s"]))
    edge_gb = _monthly_gb(t["bytes_sent"], uptime)
    origin_gb = _monthly_gb(t["origin_bytes"], uptime)
    return {
        "requests": int(t["requests"]),
        "bytes_sent": int(t["bytes_sent"]),
        "origin_fetches": int(t["origin_fetches"]),
        "origin_bytes": int(t["origin_bytes"]),
        "offload_requests": _share(t["origin_fetches"], t["requests"]),
        "offload_bytes": _share(t["origin_bytes"], t["bytes_sent"]),
        "uptime_s": round(uptime),
        "price_per_gb": price,
        "edge_egress_gb_month": edge_gb,
        "edge_egress_cost_month": round(edge_gb * price, 2),
        "origin_egress_gb_month": origin_gb,
        "origin_egress_cost_month": round(origin_gb * price, 2),
    }


def total_costs(per_edge: Iterable[Mapping[str, Any]], price: float) -> dict[str, Any]:
    """Every edge together (pure): offload over the summed counters; the monthly estimate is
    the sum of each edge's own (each extrapolated over its own uptime)."""
    edges = list(per_edge)

    def total(key: str) -> Any:
        return sum(e[key] for e in edges)

    edge_gb = round(total("edge_egress_gb_month"), 3)
    origin_gb = round(total("origin_egress_gb_month"), 3)
    return {
        "edges": len(edges),
        "requests": total("requests"),
        "bytes_sent": total("bytes_sent"),
        "origin_fetches": total("origin_fetches"),
        "origin_bytes": total("origin_bytes"),
        "offload_requests": _share(total("origin_fetches"), total("requests")),
        "offload_bytes": _share(total("origin_bytes"), total("bytes_sent")),
        "price_per_gb": price,
        "edge_egress_gb_month": edge_gb,
        "edge_egress_cost_month": round(edge_gb * price, 2),
        "origin_egress_gb_month": origin_gb,
        "origin_egress_cost_month": round(origin_gb * price, 2),
    }
