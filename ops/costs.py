"""Cost figures for ``p13n status``: origin offload and a monthly egress estimate.

From the edge's ``/metrics``: requests answered and body bytes sent to clients, fetches and
body bytes from the origin, and when the edge started. Offload is the share answered without
the origin, ``1 - origin / sent``, by requests and by bytes. The monthly estimate extrapolates
the bytes per second since the edge started to 30 days and prices them per GB (10^9 bytes):

    P13N_EGRESS_PRICE_PER_GB   price of one GB of egress (default 0.09, in your currency)

Two egress lines: the edge's to shoppers (what a CDN bills) and the origin's to edges (what
the origin's cloud bills); the origin's own count of bytes it served to edges is shown beside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["DEFAULT_PRICE_PER_GB", "edge_costs", "origin_edge_bytes", "price_per_gb"]

DEFAULT_PRICE_PER_GB = 0.09
MONTH_S = 30 * 86_400
GB = 1e9
_EDGE = {
    "p13n_edge_client_requests": "requests",
    "p13n_edge_sent_bytes": "bytes_sent",
    "p13n_edge_origin_fetches": "origin_fetches",
    "p13n_edge_origin_bytes": "origin_bytes",
    "p13n_edge_started_seconds": "started_s",
}


def price_per_gb(env: Mapping[str, str]) -> float:
    """``P13N_EGRESS_PRICE_PER_GB``, or the default; ``ValueError`` names the variable."""
    raw = env.get("P13N_EGRESS_PRICE_PER_GB") or ""
    try:
        price = float(raw) if raw else DEFAULT_PRICE_PER_GB
    except ValueError:
        raise ValueError(f"P13N_EGRESS_PRICE_PER_GB={raw!r} is not a number") from None
    if price < 0:
        raise ValueError("P13N_EGRESS_PRICE_PER_GB must not be negative")
    return price


def _values(metrics_text: str, names: Mapping[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        key = names.get(family.name)
        for s in family.samples:
            if key is not None and s.name in (family.name, family.name + "_total"):
                out[key] = s.value
    return out


def edge_costs(metrics_text: str, now_s: float, price: float) -> dict[str, Any] | None:
    """Offload and monthly egress from an edge's exposition; None for an edge without them."""
    v = _values(metrics_text, _EDGE)
    if len(v) < len(_EDGE):
        return None
    uptime = max(1.0, now_s - v["started_s"])

    def share(origin: float, sent: float) -> float | None:
        return round(max(0.0, 1 - origin / sent), 4) if sent else None

    def monthly_gb(n: float) -> float:
        return round(n / uptime * MONTH_S / GB, 3)

    edge_gb, origin_gb = monthly_gb(v["bytes_sent"]), monthly_gb(v["origin_bytes"])
    return {
        "requests": int(v["requests"]),
        "bytes_sent": int(v["bytes_sent"]),
        "origin_fetches": int(v["origin_fetches"]),
        "origin_bytes": int(v["origin_bytes"]),
        "offload_requests": share(v["origin_fetches"], v["requests"]),
        "offload_bytes": share(v["origin_bytes"], v["bytes_sent"]),
        "uptime_s": round(uptime),
        "price_per_gb": price,
        "edge_egress_gb_month": edge_gb,
        "edge_egress_cost_month": round(edge_gb * price, 2),
        "origin_egress_gb_month": origin_gb,
        "origin_egress_cost_month": round(origin_gb * price, 2),
    }


def origin_edge_bytes(metrics_text: str) -> int | None:
    """Bytes the origin served on its edge plane, from its exposition."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "p13n_origin_sent_bytes":
            for s in family.samples:
                if s.name.endswith("_total") and s.labels.get("plane") == "edge":
                    return int(s.value)
    return None


def costs_text(c: Mapping[str, Any] | None, origin_bytes: int | None) -> str:
    """The status line of the cost figures."""
    if c is None:
        return "costs      - (the edge reports no traffic figures)"

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    served = "-" if origin_bytes is None else f"{origin_bytes:,} B"
    return (
        f"costs      offload {pct(c['offload_requests'])} of requests, "
        f"{pct(c['offload_bytes'])} of bytes; egress/month ~{c['edge_egress_gb_month']} GB "
        f"edge->shoppers ({c['edge_egress_cost_month']:.2f}), ~{c['origin_egress_gb_month']} GB "
        f"origin->edges ({c['origin_egress_cost_month']:.2f}) at {c['price_per_gb']}/GB; "
        f"origin served edges {served}"
    )
