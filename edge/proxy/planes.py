"""What the shopper-facing port forwards: the shop, never the origin's admin plane.

By default every path is forwarded except the admin plane's (``ADMIN_PREFIXES``: admin API,
console, metrics, OpenAPI, health, heartbeats and the edge feeds), which answer 404 unless
the operator opts in (``P13N_EDGE_FORWARD_ADMIN=1``). An operator may narrow the rest to an
allow-list of prefixes (``P13N_EDGE_FORWARD_PREFIXES``).

Matching is on the path as the origin's router will see it: percent-decoded (so
``/v1%2Fadmin`` and ``/%761/admin`` are the admin API too), dot segments removed, runs of
slashes collapsed, case folded; a prefix matches whole segments (``/console`` matches
``/console`` and ``/console/x``, not ``/consoles``).

Redirects: an origin builds absolute ``Location`` URLs from the Host it was sent, which is
the origin's own address; ``rewrite_locations`` points them back at the edge's scheme and
Host so the origin's address never leaks.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from edge.proxy.forwarding import ClientHop

__all__ = ["ADMIN_PREFIXES", "Planes", "is_admin_path", "rewrite_locations"]

ADMIN_PREFIXES = (
    "/v1/admin",  # admin API
    "/console",  # web console
    "/metrics",
    "/openapi.json",
    "/healthz",
    "/readyz",
    "/v1/edge",  # edge config and heartbeats
    "/v1/segments",  # segment lists (edge feed)
    "/v1/segment-token",  # edge feed
    "/v1/recommendations",  # full per-shopper results: the edge's feed, not a shop page
    "/v1/bench",
)
_SLASHES = re.compile(r"/{2,}")
# One pattern for the whole list, whole segments only: ``/console`` and ``/console/x``.
_ADMIN = re.compile("(?:" + "|".join(re.escape(p) for p in ADMIN_PREFIXES) + ")(?:/|$)")


def _router_path(path: str) -> str:
    """``/V1%2Fadmin//x/../y`` -> ``/v1/admin/y``: the path as a router matches it."""
    plain = path.split("?", 1)[0]
    if "%" not in plain and "//" not in plain and "/." not in plain and plain[:1] == "/":
        return plain.lower()  # (the common case: nothing to decode or collapse)
    decoded = _SLASHES.sub("/", "/" + unquote(plain))
    return posixpath.normpath(decoded).lower()


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/") or "/"
    return path == prefix or path.startswith(prefix if prefix == "/" else prefix + "/")


def is_admin_path(path: str) -> bool:
    """Whether ``path`` belongs to the origin's admin plane."""
    return _ADMIN.match(_router_path(path)) is not None


@dataclass(frozen=True, slots=True)
class Planes:
    """The forwarding policy of one edge (from its settings)."""

    forward_admin: bool = False
    prefixes: Sequence[str] = ()

    def forwards(self, path: str) -> bool:
        """Whether a proxied request for ``path`` goes to the origin (else 404)."""
        if not self.forward_admin and is_admin_path(path):
            return False
        if not self.prefixes:
            return True
        p = _router_path(path)
        return any(_under(p, prefix.lower()) for prefix in self.prefixes)


def rewrite_locations(
    headers: list[tuple[str, str]], origin_url: str, hop: ClientHop
) -> list[tuple[str, str]]:
    """``Location`` / ``Content-Location`` URLs on the origin's own host rewritten to the
    edge's scheme and Host (a relative reference when the client sent no Host)."""
    origin = urlsplit(origin_url).netloc.lower()
    out = []
    for name, value in headers:
        parts = urlsplit(value) if name in ("location", "content-location") else None
        if parts is None or not parts.netloc or parts.netloc.lower() != origin:
            out.append((name, value))
            continue
        rest = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        rest += f"#{parts.fragment}" if parts.fragment else ""
        out.append((name, f"{hop.proto}://{hop.host}{rest}" if hop.host else rest))
    return out
