"""The edge's response store: bounded by bytes, LRU, with Vary variants and tag purges.

One primary key (method + normalized URL, or a personalization cache key) holds a few
variants, each selected by the request header values its response's ``Vary`` names
(RFC 9111 §4.1). ``_ByteLRU`` bounds the total by bytes: an entry's size is its body plus
its header bytes (plus its decoded form, for a rail entry), so a burst of large responses
evicts the least recently used. (It is an ``OrderedDict`` rather than
``cachetools.LRUCache``: a lookup is one C-level ``get`` and ``move_to_end`` instead of five
Python frames, and lookups are the hit path.)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from edge.proxy.cachecontrol import ResponseDirectives
from edge.proxy.freshness import Timing

__all__ = ["DEFAULT_MAX_BYTES", "ResponseStore", "StoredResponse", "selecting_values", "vary_names"]

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
MAX_VARIANTS = 16  # per primary key: bounds the cost of a Vary: User-Agent style explosion
_NOT_ON_THE_WIRE = frozenset({"age", "content-length", "transfer-encoding", "connection"})
_ENTRY_OVERHEAD = 256  # bookkeeping bytes per variant, so tiny bodies still count
# A decoded rail entry kept beside its body (``parsed``) takes ~2.3 times the body's bytes
# (200-item lists, measured with tracemalloc): the bound counts it, or a store full of rail
# entries held about twice its byte bound.
_PARSED_PER_BODY_BYTE = 2.4


def vary_names(vary: str | None) -> tuple[str, ...]:
    """Header names a Vary value lists, lowercased and sorted (``"Accept, accept-encoding"`` ->
    ``("accept", "accept-encoding")``)."""
    if not vary:
        return ()
    return tuple(sorted({v.strip().lower() for v in vary.split(",") if v.strip()}))


def _normalize_value(value: str | None) -> str | None:
    # RFC 9111 §4.1: whitespace and case differences that do not change meaning may be
    # normalized; we collapse whitespace around commas, which is always safe.
    if value is None:
        return None
    return ",".join(part.strip() for part in value.split(","))


@dataclass
class StoredResponse:
    """One stored response and what the cache needs to reuse it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    timing: Timing
    directives: ResponseDirectives
    lifetime: float
    vary: tuple[tuple[str, str | None], ...] = ()
    tags: frozenset[str] = frozenset()
    generations: dict[str, tuple[int, int]] = field(default_factory=dict)
    # The body already decoded (a rail entry), so hits skip re-parsing it; its size is
    # accounted for by the body it was decoded from.
    parsed: object | None = None
    # The headers as the wire sends them on a hit (``wire_headers``), encoded once.
    _wire: list[tuple[bytes, bytes]] | None = field(default=None, repr=False, compare=False)
    # The status line and header block a protocol-level hit writes (``edge.proxy.hitpath``).
    rendered: tuple[bytes, bool] | None = field(default=None, repr=False, compare=False)
    # Per-hit memos of the protocol-level hit path, not carried over by ``replace`` (init
    # False): the purge generations this variant was last found unpurged against (the
    # config's mapping, which is replaced on every change, never mutated), and the last
    # head written (the ages it holds for, exclusive, the lifetime it was made with, its
    # bytes): both only change once a second or per purge.
    unpurged_for: object = field(default=None, init=False, repr=False, compare=False)
    hit_head: tuple[float, float, float, bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def wire_headers(self) -> list[tuple[bytes, bytes]]:
        """The stored headers encoded for the sender, without the ones every answer sets
        itself (Age, Content-Length) or never sends (Transfer-Encoding, Connection); made on
        the first hit and kept, so later hits encode nothing."""
        if self._wire is None:
            self._wire = [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in self.headers
                if k not in _NOT_ON_THE_WIRE
            ]
        return self._wire

    @property
    def size(self) -> int:
        body = len(self.body)
        parsed = int(body * _PARSED_PER_BODY_BYTE) if self.parsed is not None else 0
        return body + parsed + sum(len(k) + len(v) for k, v in self.headers) + _ENTRY_OVERHEAD

    def header(self, name: str) -> str | None:
        """First value of a header (names stored lowercased)."""
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def matches(self, request_headers: Mapping[str, str]) -> bool:
        """Whether the request selects this variant (every Vary-named value equal)."""
        if not self.vary:
            return True
        return all(
            _normalize_value(request_headers.get(name)) == value for name, value in self.vary
        )


def selecting_values(
    names: Iterable[str], request_headers: Mapping[str, str]
) -> tuple[tuple[str, str | None], ...]:
    """The request's values for the Vary-named headers, as stored with a variant."""
    return tuple((n, _normalize_value(request_headers.get(n))) for n in names)


class _ByteLRU:
    """Primary key -> variants, least recently used first, bounded by their total size."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.currsize = 0
        self._data: OrderedDict[str, list[StoredResponse]] = OrderedDict()
        self._sizes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> list[StoredResponse] | None:
        """The variants of ``key``, now the most recently used; None when absent."""
        found = self._data.get(key)
        if found is not None:
            self._data.move_to_end(key)
        return found

    def __setitem__(self, key: str, variants: list[StoredResponse]) -> None:
        self.pop(key)
        size = sum(v.size for v in variants)
        if size > self.maxsize:
            return  # (more variants than the whole store holds: none is kept)
        while self._data and self.currsize + size > self.maxsize:
            oldest, _ = self._data.popitem(last=False)
            self.currsize -= self._sizes.pop(oldest)
        self._data[key] = variants
        self._sizes[key] = size
        self.currsize += size

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self.currsize -= self._sizes.pop(key)

    def pop(self, key: str) -> list[StoredResponse] | None:
        """Remove ``key``; its variants, or None when absent."""
        found = self._data.pop(key, None)
        if found is not None:
            self.currsize -= self._sizes.pop(key)
        return found

    def keys(self) -> Iterator[str]:
        return iter(list(self._data))

    def items(self) -> list[tuple[str, list[StoredResponse]]]:
        return list(self._data.items())

    def clear(self) -> None:
        self._data.clear()
        self._sizes.clear()
        self.currsize = 0


class ResponseStore:
    """Primary key -> variants, bounded by total bytes."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._lru = _ByteLRU(max_bytes)

    @property
    def bytes_used(self) -> int:
        return int(self._lru.currsize)

    @property
    def max_bytes(self) -> int:
        return int(self._lru.maxsize)

    def __len__(self) -> int:
        return len(self._lru)

    def keys(self) -> list[str]:
        """Every primary key (for audits such as the no-shopper-id scan)."""
        return list(self._lru.keys())

    def variants(self, primary: str) -> list[StoredResponse]:
        """The stored variants of a primary key (most recent first)."""
        return list(self._lru.get(primary) or ())

    def lookup(self, primary: str, request_headers: Mapping[str, str]) -> StoredResponse | None:
        """The variant the request selects, if any (now the most recently used)."""
        # (``_ByteLRU.get`` inlined: this is the hit path.)
        lru = self._lru
        variants = lru._data.get(primary)
        if variants is None:
            return None
        lru._data.move_to_end(primary)
        for variant in variants:
            if not variant.vary or variant.matches(request_headers):
                return variant
        return None

    def put(self, primary: str, response: StoredResponse) -> bool:
        """Store (replacing the variant with the same selecting values); False if too big."""
        if response.size > self.max_bytes:
            return False
        kept = [v for v in self._lru.get(primary) or () if v.vary != response.vary]
        variants = [response, *kept][:MAX_VARIANTS]
        while sum(v.size for v in variants) > self.max_bytes:
            variants.pop()  # older variants make room for the new one
        self._lru[primary] = variants
        return True

    def invalidate(self, primary: str) -> bool:
        """Drop every variant of a primary key (RFC 9111 §4.4); True if anything was stored."""
        return self._lru.pop(primary) is not None

    def entries(self) -> list[tuple[str, StoredResponse]]:
        """Every (primary key, variant) pair, for purges and audits."""
        return [(k, v) for k, variants in self._lru.items() for v in variants]

    def expire_tagged(self, tags: Iterable[str]) -> int:
        """Make every variant carrying any of ``tags`` stale now (a soft purge): it may still
        be served under stale-while-revalidate while one request revalidates it."""
        wanted = set(tags)
        expired = 0
        for _, variant in self.entries():
            if variant.tags & wanted:
                variant.lifetime = 0.0
                expired += 1
        return expired

    def clear(self) -> None:
        """Drop everything (a hard purge of ``*``)."""
        self._lru.clear()

    def drop_tagged(self, tags: Iterable[str]) -> int:
        """Remove every variant carrying any of ``tags``; returns how many were removed."""
        wanted = set(tags)
        removed = 0
        for primary, variants in self._lru.items():
            kept = [v for v in variants if not (v.tags & wanted)]
            removed += len(variants) - len(kept)
            if not kept:
                del self._lru[primary]
            elif len(kept) != len(variants):
                self._lru[primary] = kept
        return removed

    def expire_all(self) -> int:
        """Make every variant stale now, tagged or not (a soft purge of ``*``)."""
        expired = 0
        for _, variant in self.entries():
            variant.lifetime = 0.0
            expired += 1
        return expired
