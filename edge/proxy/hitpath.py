"""The shared cache's fresh hits, answered in the protocol layer: no ASGI scope, no task,
no Starlette, one write of pre-rendered bytes.

``EdgeProtocol`` asks ``HitPath.answer`` once a request head is parsed. It answers only what
the ASGI app would answer with a plain fresh hit, byte for byte the same status line and
headers: a GET or HEAD without a body, without request directives, validators, ranges or
upgrades, for a target the shopper port forwards (not a rail, not the admin plane), whose
stored variant is fresh, not purged and has no ``Location`` to rewrite. Anything else
(``None``) goes to the ASGI app as before, so every RFC rule keeps one implementation.

Per stored response the status line and its header block are rendered once
(``StoredResponse.rendered_head``); per hit only ``Age``, the ``Cache-Status`` TTL, and a
``Date`` when the origin sent none are formatted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from edge.cache_status import CACHE_NAME
from edge.proxy.app import DATE, request_headers
from edge.proxy.httpcache import HttpCache
from edge.proxy.metrics import Traffic
from edge.proxy.planes import Planes
from edge.proxy.store import StoredResponse
from edge.proxy.urls import normalize_target
from edge.request import rail_route

__all__ = ["HitPath"]

# Request fields after which a stored response is not simply the answer: a body, request
# cache directives, validators and ranges (304s, partial content), upgrades, Expect.
_SLOW_FIELDS = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"cache-control",
        b"pragma",
        b"if-none-match",
        b"if-modified-since",
        b"if-match",
        b"if-unmodified-since",
        b"if-range",
        b"range",
        b"upgrade",
        b"expect",
        b"authorization",
    }
)
_MEMO_MAX = 4096
_HIT = f"{CACHE_NAME}; hit; ttl=".encode()


class _LazyHeaders(Mapping[str, str]):
    """The request's fields by name, decoded only if a stored variant's Vary asks."""

    __slots__ = ("_built", "_raw")

    def __init__(self) -> None:
        self._raw: list[tuple[bytes, bytes]] = []
        self._built: dict[str, str] | None = None

    def _map(self) -> dict[str, str]:
        if self._built is None:
            # (values as uvicorn hands them over: trailing whitespace dropped, RFC 9110 §5.5)
            self._built = request_headers([(k, v.rstrip(b" \t")) for k, v in self._raw])
        return self._built

    def __getitem__(self, name: str) -> str:
        return self._map()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())


def _render(stored: StoredResponse) -> tuple[bytes, bool]:
    """(status line and stored header block, whether it has a Date); an empty block when a
    ``Location`` needs rewriting per request."""
    wire = stored.wire_headers()
    if any(k in (b"location", b"content-location") for k, _ in wire):
        return b"", False
    block = b"".join([STATUS_LINE[stored.status], *(b"%s: %s\r\n" % kv for kv in wire)])
    return block, any(k == b"date" for k, _ in wire)


def _head(stored: StoredResponse, block: bytes, dated: bool, age: float) -> bytes:
    """A hit's whole head: the stored ``block``, Age, Cache-Status, Content-Length (and Date,
    when the origin sent none); remembered on ``stored`` with the ages it holds for (not
    when the edge writes Date itself: that changes with them but not in step)."""
    lifetime = stored.lifetime
    whole = int(age)
    ttl = int(lifetime - age)
    out = b"%sage: %d\r\ncache-status: %s%d\r\ncontent-length: %d\r\n%s\r\n" % (
        block,
        whole if whole > 0 else 0,
        _HIT,
        ttl,
        len(stored.body),
        b"" if dated else b"date: " + DATE.now() + b"\r\n",
    )
    if dated and age >= 0:
        # int(age) stays ``whole`` on [whole, whole + 1), int(lifetime - age) stays ``ttl``
        # on (lifetime - ttl - 1, lifetime - ttl]: the memo holds strictly inside both.
        low = max(whole, lifetime - ttl - 1)
        high = min(whole + 1, lifetime - ttl)
        stored.hit_head = (low, high, lifetime, out)
    return out


class HitPath:
    """Fresh hits of one edge's shared cache as whole HTTP/1.1 answers."""

    def __init__(
        self, http: HttpCache, planes: Planes, traffic: Traffic, hello_path: str | None = None
    ) -> None:
        self.http = http
        self.planes = planes
        self.traffic = traffic
        self.hello_path = hello_path
        # request target -> primary key ("" when the target is never a plain hit)
        self._primaries: dict[bytes, str] = {}
        self._fields = _LazyHeaders()

    def primary(self, url: bytes) -> str:
        """The cache's primary key of a request target; "" when the app must see it."""
        key = self._primaries.get(url)
        if key is None:
            key = self._primary(url)
            if len(self._primaries) >= _MEMO_MAX:
                self._primaries.clear()
            self._primaries[url] = key
        return key

    def _primary(self, url: bytes) -> str:
        try:
            parts = httptools.parse_url(url)
            raw_path = parts.path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return ""
        path = unquote(raw_path) if "%" in raw_path else raw_path
        if rail_route(path) is not None or path == self.hello_path:
            return ""
        if not self.planes.forwards(raw_path):
            return ""
        query = (parts.query or b"").decode("latin-1")
        return "GET " + normalize_target(raw_path + (f"?{query}" if query else ""))

    def answer(self, method: bytes, url: bytes, fields: list[tuple[bytes, bytes]]) -> bytes | None:
        """The whole answer to a request that is a plain fresh hit; None otherwise.
        ``fields``: the request's header fields, names lower-cased."""
        if method == b"GET":
            head = False
        elif method == b"HEAD":
            head = True
        else:
            return None
        for name, _ in fields:
            if name in _SLOW_FIELDS:
                return None
        primary = self._primaries.get(url)
        if primary is None:
            primary = self.primary(url)
        if not primary:
            return None
        lazy = self._fields
        # One mapping per hit path, reset per hit (answers are synchronous: no two requests
        # share it at once), so a hit allocates none.
        lazy._raw, lazy._built = fields, None
        found = self.http.fresh_hit(primary, lazy)
        if found is None:
            return None
        stored, age = found
        rendered = stored.rendered
        if rendered is None:
            rendered = stored.rendered = _render(stored)
        head_block, dated = rendered
        if not head_block:
            return None  # a Location to rewrite: the app's path
        body = stored.body
        memo = stored.hit_head
        # Age and the TTL change once a second: the head is formatted once a second per
        # stored response (``_head``), and kept with the ages it holds for.
        if memo is not None and memo[0] < age < memo[1] and memo[2] == stored.lifetime:
            out = memo[3]
        else:
            out = _head(stored, head_block, dated, age)
        self.http.counters.hit += 1
        traffic = self.traffic
        traffic.requests += 1
        if head:
            return out
        traffic.bytes_sent += len(body)
        return out + body
