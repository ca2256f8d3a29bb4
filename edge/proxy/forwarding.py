"""What a proxied request carries to the origin.

An ordinary reverse proxy (as nginx and Varnish are): every end-to-end request header is
forwarded, except

- the hop-by-hop ones (RFC 9110 §7.6.1: ``Connection``, ``Keep-Alive``, ``TE``, ...) and
  every header the client's ``Connection`` names;
- ``Host`` (the origin's own comes from its URL) and ``Expect`` (the edge reads the whole
  body before it forwards anything);
- the forwarding headers a client could forge (``Forwarded``, ``X-Forwarded-*``,
  ``X-Real-IP``): the edge is the first hop, so it writes its own ``X-Forwarded-For``,
  ``-Proto`` and ``-Host`` from the connection, replacing the client's. ``Via`` gets the
  edge appended (RFC 9110 §7.6.3).

Cache poisoning is prevented by keying on ``Vary`` and by never trusting forwarding headers,
not by stripping everything. The personalization routes (``/p13n/``) keep a strict
allow-list: whatever reaches the origin for them is what the rail contract names.

A validation sends the stored variant's own validators instead of the client's conditionals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge.cache_status import CACHE_NAME
from edge.proxy.store import StoredResponse

__all__ = [
    "CLIENT_FORWARDING",
    "FORWARD_ALLOW",
    "HOP_BY_HOP",
    "PERSONALIZATION_PREFIX",
    "ClientHop",
    "connection_named",
    "forwardable_headers",
    "origin_request_headers",
]

# RFC 9110 §7.6.1 connection-specific fields, never forwarded or stored (Content-Length is
# recomputed for the body actually sent).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "content-length",
    }
)
# What a client may send to make the origin believe another address, scheme or host.
CLIENT_FORWARDING = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-real-ip",
    }
)
_NEVER = HOP_BY_HOP | CLIENT_FORWARDING | {"host", "expect", "via"}
PERSONALIZATION_PREFIX = "/p13n/"
# What a personalization route's request may carry to the origin.
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


@dataclass(frozen=True, slots=True)
class ClientHop:
    """The connection a request came in on: the client's address, the scheme, and the Host
    it asked for (what the edge writes into ``X-Forwarded-*``)."""

    addr: str = ""
    proto: str = "http"
    host: str = ""


def connection_named(value: str | None) -> frozenset[str]:
    """The header names a ``Connection`` value lists (``"close, X-Foo"`` -> ``{"close",
    "x-foo"}``); they are hop-by-hop for this connection only."""
    if not value:
        return frozenset()
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())


def forwardable_headers(
    headers: Mapping[str, str], hop: ClientHop | None = None, *, strict: bool = False
) -> dict[str, str]:
    """The request headers the origin gets (see the module docstring); ``strict``: only the
    personalization allow-list."""
    if strict:
        out = {k: v for k, v in headers.items() if k in FORWARD_ALLOW}
    else:
        named = connection_named(headers.get("connection"))
        out = {k: v for k, v in headers.items() if k not in _NEVER and k not in named}
    via = headers.get("via")
    out["via"] = f"{via}, 1.1 {CACHE_NAME}" if via and not strict else f"1.1 {CACHE_NAME}"
    if hop is not None:
        if hop.addr:
            out["x-forwarded-for"] = hop.addr
        out["x-forwarded-proto"] = hop.proto
        if hop.host:
            out["x-forwarded-host"] = hop.host
    return out


def origin_request_headers(fwd: Mapping[str, str], stored: StoredResponse | None) -> dict[str, str]:
    """The headers of a cache's own GET from the forwardable ones: the client's conditionals
    replaced by the stored variant's validators (none for a miss)."""
    out = {k: v for k, v in fwd.items() if k not in _CONDITIONALS}
    if stored is not None:
        if (etag := stored.header("etag")) is not None:
            out["if-none-match"] = etag
        if (lm := stored.header("last-modified")) is not None:
            out["if-modified-since"] = lm
    return out
