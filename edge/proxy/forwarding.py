"""What a proxied request carries to the origin: an allow-list of end-to-end headers.

Everything not listed (``X-Forwarded-Host``, ``Forwarded``, ``X-Original-URL`` and friends)
is dropped: unkeyed headers must not change what gets cached. A validation sends the stored
variant's own validators instead of the client's conditionals.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge.cache_status import CACHE_NAME
from edge.proxy.store import StoredResponse

__all__ = ["FORWARD_ALLOW", "forwardable_headers", "origin_request_headers"]

FORWARD_ALLOW = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "authorization",
        "cache-control",
        "content-type",
        "cookie",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-unmodified-since",
        "origin",
        "pragma",
        "range",
        "sec-gpc",
        "traceparent",
        "tracestate",
        "user-agent",
    }
)
_CONDITIONALS = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since")


def forwardable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The subset of request headers the origin gets, plus ``Via``."""
    out = {k: v for k, v in headers.items() if k in FORWARD_ALLOW}
    out["via"] = f"1.1 {CACHE_NAME}"
    return out


def origin_request_headers(
    headers: Mapping[str, str], stored: StoredResponse | None
) -> dict[str, str]:
    """The headers of a cache's own GET: the client's conditionals replaced by the stored
    variant's validators (none for a miss)."""
    fwd = {k: v for k, v in forwardable_headers(headers).items() if k not in _CONDITIONALS}
    if stored is not None:
        if (etag := stored.header("etag")) is not None:
            fwd["if-none-match"] = etag
        if (lm := stored.header("last-modified")) is not None:
            fwd["if-modified-since"] = lm
    return fwd
