"""The one ``Cache-Status`` vocabulary of both edges (RFC 9211), rails and proxied content.

A rail answer names the tier that answered in ``detail``::

    hit      p13n-edge; hit; ttl=42; detail=hit
    stale    p13n-edge; hit; ttl=-5; detail=stale-while-revalidate   (or stale-if-error)
    miss     p13n-edge; fwd=miss; fwd-status=200; stored; detail=miss
    origin   p13n-edge; fwd=bypass; fwd-status=200; detail=origin     (fully personal route)
    default  p13n-edge; fwd=miss; fwd-status=503; detail=default      (origin failed, no stale)

``fwd-status`` is the status the origin answered (200 when its body was unusable), absent
when it never answered. When a fault other than the origin's shaped the answer, ``detail``
says which after a slash (an sf-token may hold ``/``)::

    p13n-edge; fwd=miss; fwd-status=200; detail=miss/cache-error     the store failed: not stored
    p13n-edge; fwd=miss; detail=default/core-error                   a bug in the decision core
    p13n-edge; fwd=miss; detail=default/config-error                 the Worker's vars unusable
"""

from __future__ import annotations

import functools

__all__ = [
    "CACHE_ERROR",
    "CACHE_NAME",
    "CONFIG_ERROR",
    "CORE_ERROR",
    "DEFAULT",
    "HIT",
    "MISS",
    "ORIGIN",
    "ORIGIN_UNAVAILABLE",
    "STALE",
    "STALE_IF_ERROR",
    "STALE_WHILE_REVALIDATE",
    "TIERS",
    "cache_status",
    "forward_failed",
]

CACHE_NAME = "p13n-edge"

# Tiers of a rail answer (and, but for ``stale``, their ``detail``).
HIT = "hit"
STALE = "stale"
MISS = "miss"
ORIGIN = "origin"
DEFAULT = "default"
TIERS = frozenset({HIT, STALE, MISS, ORIGIN, DEFAULT})

# Details of stale answers (RFC 5861) and of a proxied request the origin never answered.
STALE_WHILE_REVALIDATE = "stale-while-revalidate"
STALE_IF_ERROR = "stale-if-error"
ORIGIN_UNAVAILABLE = "origin-unavailable"

# Faults other than the origin's, named after the detail's slash.
CACHE_ERROR = "cache-error"  # the entry cache raised on a read or a write
CORE_ERROR = "core-error"  # the decision core (or the flow around it) raised
CONFIG_ERROR = "config-error"  # the Worker's vars or secrets are unusable


@functools.lru_cache(maxsize=1024)  # a handful of tiers x ttls: made once, not per request
def cache_status(
    name: str,
    tier: str,
    *,
    ttl_s: int | None = None,
    fwd_status: int | None = None,
    detail: str | None = None,
    fault: str | None = None,
) -> str:
    """One RFC 9211 ``Cache-Status`` member for this edge's rail answer."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}")
    parts = [name]
    if tier in (HIT, STALE):
        parts.append("hit")
        if ttl_s is not None:
            parts.append(f"ttl={ttl_s}")
    else:
        parts.append("fwd=bypass" if tier == ORIGIN else "fwd=miss")
        if fwd_status is not None:
            parts.append(f"fwd-status={fwd_status}")
        if tier == MISS and fault != CACHE_ERROR:
            parts.append("stored")
    said = detail or tier
    parts.append(f"detail={said}/{fault}" if fault else f"detail={said}")
    return "; ".join(parts)


def forward_failed(name: str) -> str:
    """The ``Cache-Status`` of a forwarded (non-rail) request the origin never answered."""
    return f"{name}; fwd=bypass; detail={ORIGIN_UNAVAILABLE}"
