"""In-memory caches of shared, slowly changing data: per item and per segment, never per shopper.

- co-visitation neighbours of an item (merged over partitions),
- catalog entries (a miss is cached too, as None),
- segment lists by (hseg, variant, etag): a new etag in the registry is a new entry.

Stock is never trusted from here alone: the item mask in the snapshot (refreshed every
``refresh_ms`` and on local changes) removes out-of-stock items at once. Catalog entries the
second round trip could not know about yet (neighbours discovered in it) are queued in
``wanted`` and fetched by the next request's second round trip.
"""

from __future__ import annotations

from collections.abc import Iterable

from cachetools import TTLCache

from cache_keys.wire import SegmentList
from origin.catalog import CatalogEntry
from origin.store import Clock

__all__ = ["ItemCaches"]

MAX_WANTED = 256


class ItemCaches:
    """The caches of one worker; ``clock`` is the app's clock, so tests tick a fake one."""

    def __init__(self, *, ttl_s: int, clock: Clock, maxsize: int = 100_000) -> None:
        self.covis: TTLCache[str, tuple[tuple[str, float], ...]] = TTLCache(
            maxsize, ttl_s, timer=clock
        )
        self.catalog: TTLCache[str, CatalogEntry | None] = TTLCache(maxsize, ttl_s, timer=clock)
        self.lists: TTLCache[tuple[str, str, str], SegmentList] = TTLCache(4096, ttl_s, timer=clock)
        self.wanted: dict[str, None] = {}

    def want(self, skus: Iterable[str]) -> None:
        """Queue catalog lookups for the next round trip (bounded; oldest dropped)."""
        for sku in skus:
            if sku not in self.catalog:
                self.wanted[sku] = None
        while len(self.wanted) > MAX_WANTED:
            del self.wanted[next(iter(self.wanted))]

    def take_wanted(self) -> list[str]:
        """The queued skus, emptying the queue."""
        out = [s for s in self.wanted if s not in self.catalog]
        self.wanted.clear()
        return out

    def forget_items(self, skus: Iterable[str]) -> None:
        """Drop cached catalog entries (after a catalog change in this worker)."""
        for sku in skus:
            self.catalog.pop(sku, None)

    def clear(self) -> None:
        """Drop everything (an ``all`` invalidation)."""
        self.covis.clear()
        self.catalog.clear()
        self.lists.clear()
        self.wanted.clear()
