"""In-memory caches of shared, slowly changing data: per item and per segment, never per shopper.

- co-visitation neighbours of an item (merged over partitions),
- catalog entries (a miss is cached too, as None),
- segment lists by (hseg, variant, etag), as ``ListView`` (a new etag is a new entry).

Stock is never trusted from here alone: the item mask in the snapshot (refreshed every
``refresh_ms`` and on local changes) removes out-of-stock items at once. Catalog entries the
second round trip could not know about yet (neighbours discovered in it) are queued in
``wanted`` and fetched by the next request's second round trip.

``Expiring`` takes ``now`` per call instead of a timer: the hot path reads the clock once per
request (profiling showed ``cachetools.TTLCache``'s per-access timer and bookkeeping costing
more than the ranking around it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cache_keys.wire import ListItem, SegmentList
from origin.catalog_records import CatalogEntry

__all__ = ["MISSING", "Expiring", "ItemCaches", "ListView"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
MAX_WANTED = 256
LIST_TAKE = 40  # candidates taken from a segment list per request
POPULAR_TAKE = 20  # and from the popular list (its head overlaps most segment lists)


class _Missing:
    __slots__ = ()


MISSING = _Missing()


class Expiring(Generic[K, V]):
    """A dict whose entries expire ``ttl_s`` after they were put; cleared when full.

    Each entry lives a random 75-100% of ``ttl_s`` so entries loaded together (a cold start)
    do not all expire together and send every request to Redis at once. Expired entries are
    swept out when the dict has doubled since the last sweep: keys that are never asked for
    again (a segment list's old etag after every rebuild) would otherwise stay until
    ``maxsize``, and the process would grow for as long as it runs. The sweep costs O(1) per
    ``put`` amortized, and the size stays within twice the live entries (at least
    ``MIN_SWEEP``).
    """

    MIN_SWEEP = 64

    def __init__(
        self, ttl_s: float, maxsize: int, jitter: Callable[[], float] = random.random
    ) -> None:
        self.ttl_s = ttl_s
        self.maxsize = maxsize
        self.jitter = jitter
        self._data: dict[K, tuple[float, V]] = {}
        self._sweep_at = self.MIN_SWEEP

    def get(self, key: K, now: float) -> V | _Missing:
        """The live value, else ``MISSING``."""
        hit = self._data.get(key)
        if hit is None or hit[0] <= now:
            return MISSING
        return hit[1]

    def split(self, keys: Iterable[K], now: float) -> tuple[dict[K, V], list[K]]:
        """The live values of ``keys`` and, in order, the keys without one (one call per
        request instead of one ``get`` per key)."""
        found: dict[K, V] = {}
        missing: list[K] = []
        data = self._data
        for key in keys:
            hit = data.get(key)
            if hit is None or hit[0] <= now:
                missing.append(key)
            else:
                found[key] = hit[1]
        return found, missing

    def put(self, key: K, value: V, now: float) -> None:
        """Store ``value`` until ``now + ttl_s``."""
        if len(self._data) >= min(self._sweep_at, self.maxsize):
            self._sweep(now)
        if len(self._data) >= self.maxsize:
            self._data.clear()  # rare: a bounded worst case beats LRU bookkeeping per access
        self._data[key] = (now + self.ttl_s * (1.0 - 0.25 * self.jitter()), value)

    def _sweep(self, now: float) -> None:
        self._data = {k: hit for k, hit in self._data.items() if hit[0] > now}
        self._sweep_at = max(self.MIN_SWEEP, 2 * len(self._data))

    def pop(self, key: K) -> None:
        """Forget ``key``."""
        self._data.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class ListView:
    """A segment or popular list prepared for ranking: normalized top scores and an index."""

    items: tuple[ListItem, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)
    index: Mapping[str, ListItem] = field(default_factory=dict)

    @classmethod
    def of(cls, sl: SegmentList | None, take: int = LIST_TAKE) -> ListView:
        """The view of ``sl`` (empty for None)."""
        if sl is None:
            return cls()
        top = sl.items[:take]
        best = max((li.score for li in top), default=0.0)
        scores = {li.item: li.score / best for li in top if li.score > 0} if best > 0 else {}
        return cls(sl.items, scores, {li.item: li for li in sl.items})

    @classmethod
    def from_items(cls, items: Sequence[ListItem]) -> ListView:
        """A view of bare items (tests)."""
        return cls.of(SegmentList("a" * 16, "control", "-", 0, tuple(items)))


class ItemCaches:
    """The caches of one worker."""

    def __init__(self, *, ttl_s: int, covis_ttl_s: int, maxsize: int = 100_000) -> None:
        self.covis: Expiring[str, tuple[tuple[str, float], ...]] = Expiring(covis_ttl_s, maxsize)
        self.catalog: Expiring[str, CatalogEntry | None] = Expiring(ttl_s, maxsize)
        self.lists: Expiring[tuple[str, str, str], ListView] = Expiring(ttl_s, 4096)
        # (hseg, variant) -> the stored bytes last parsed and their view: a list refetched
        # when its entry expires is parsed again only when its bytes changed
        self.parsed: dict[tuple[str, str], tuple[bytes, ListView]] = {}
        self.wanted: dict[str, None] = {}

    def list_view(
        self, slot: tuple[str, str], raw: bytes | None, parse: Callable[[bytes | None], ListView]
    ) -> ListView:
        """The view of the list stored as ``raw`` in ``slot``, parsed only when new."""
        last = self.parsed.get(slot)
        if raw is not None and last is not None and last[0] == raw:
            return last[1]
        view = parse(raw)
        if raw is not None:
            if len(self.parsed) >= self.lists.maxsize:
                self.parsed.clear()
            self.parsed[slot] = (raw, view)
        return view

    def want(self, skus: Iterable[str], now: float) -> None:
        """Queue catalog lookups for the next round trip (bounded; oldest dropped)."""
        for sku in skus:
            if self.catalog.get(sku, now) is MISSING:
                self.wanted[sku] = None
        while len(self.wanted) > MAX_WANTED:
            del self.wanted[next(iter(self.wanted))]

    def take_wanted(self) -> list[str]:
        """The queued skus, emptying the queue."""
        out = list(self.wanted)
        self.wanted.clear()
        return out

    def forget_items(self, skus: Iterable[str]) -> None:
        """Drop cached catalog entries (after a catalog change in this worker)."""
        for sku in skus:
            self.catalog.pop(sku)

    def clear(self) -> None:
        """Drop everything (an ``all`` invalidation)."""
        self.covis.clear()
        self.catalog.clear()
        self.lists.clear()
        self.parsed.clear()
        self.wanted.clear()
