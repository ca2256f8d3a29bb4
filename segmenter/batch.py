"""One batch, end to end: load, decide, fold, archive, write, commit.

The order of the writes is what makes effects exactly-once without cross-slot transactions::

    archive     (file, before anything else; readers drop repeats by stream id)
    dead        idempotent per source entry
    shoppers    compare-and-set on each shopper's last applied stream id
    commit      partition aggregates + offset + XACK, fenced, atomic: the commit point
    erasures    shoppers tombstoned while the batch ran: what it wrote of them is removed

On a single Redis the store may do shoppers and commit as one atomic script (``Store``'s
batched writes); the order above is what holds on Redis Cluster.

Until the commit, the partition state is unchanged, so a rerun of the same entries (after a
crash, by this or another process) takes the same decisions; shoppers already written are
skipped by their last applied id, entries at or below the offset are only acknowledged.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from segmenter import aggregates, features
from segmenter.aggregates import Entry, PartitionEffects, PartitionParams, parse_id
from segmenter.archive import ArchiveWriter
from segmenter.erasure import erase_after_batch
from segmenter.features import FeatureParams, ShopperState
from segmenter.store import Lease, Loaded, Store, StoreUnavailable

__all__ = ["Applier", "BatchResult", "Operators"]

MAX_CONFLICT_RETRIES = 3


@dataclass(frozen=True, slots=True)
class Operators:
    partition: PartitionParams
    features: FeatureParams


@dataclass(slots=True)
class BatchResult:
    status: str  # OK | FENCED | OFFSET | CONFLICT
    effects: PartitionEffects | None = None
    apply_s: float = 0.0


def shopper_writes(
    loaded: Loaded, fx: PartitionEffects, params: FeatureParams
) -> list[tuple[str, str, list[Any], ShopperState]]:
    """Fold each shopper's accepted events after its last applied id; diff against Redis."""
    by_user: dict[str, list[Entry]] = {}
    for e in fx.accepted:
        assert e.event is not None
        by_user.setdefault(e.event.user, []).append(e)
    out = []
    for user, entries in by_user.items():
        old = loaded.shoppers.get(user) or ShopperState()
        done = parse_id(old.last_id) if old.last_id else (-1, -1)
        todo = [(e.stream_id, e.event) for e in entries if e.key > done and e.event]
        if not todo:
            continue
        new = features.apply(old, todo, params, linked=loaded.shoppers)
        out.append((user, old.last_id, features.diff(old, new), new))
    return out


class Applier:
    """Applies batches of one process; the same code serves the processor and rebuilds."""

    def __init__(
        self,
        store: Store,
        ops: Operators,
        *,
        archive: ArchiveWriter | None,
        lease_ttl_ms: int,
        shopper_chunk: int = 500,
        cache_size: int = 200_000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.cache_size = cache_size
        self.store = store
        self.ops = ops
        self.archive = archive
        self.lease_ttl_ms = lease_ttl_ms
        self.shopper_chunk = shopper_chunk
        self.clock = clock
        # Shopper states this process wrote last, per partition: only a partition's owner
        # writes its shoppers, and every write is a compare-and-set on last_id, so a stale
        # entry (erasure, expiry, another owner) shows up as a conflict and is reloaded.
        self.cache: dict[int, OrderedDict[str, ShopperState]] = {}

    def forget(self, partition: int) -> None:
        """Drop the cached shoppers of a partition (its lease was lost or released)."""
        self.cache.pop(partition, None)

    def _remember(
        self, partition: int, writes: Sequence[tuple[str, str, list[Any], ShopperState]]
    ) -> None:
        cache = self.cache.setdefault(partition, OrderedDict())
        for user, _, _, state in writes:
            cache[user] = state
            cache.move_to_end(user)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)

    async def _undo_racing_erasures(
        self,
        partition: int,
        writes: Sequence[tuple[str, str, list[Any], ShopperState]],
        fx: PartitionEffects,
    ) -> None:
        """Shoppers erased after this batch was loaded: remove what it wrote of them."""
        users = [w[0] for w in writes] + [e.event.user for e in fx.archive if e.event]
        erased = await self.store.erased(users)
        for user in erased:
            self.cache.get(partition, OrderedDict()).pop(user, None)
            root = self.archive.root if self.archive is not None else None
            try:
                await erase_after_batch(self.store.r, self.store.keys, user, partition, root)
            except (RedisError, OSError) as exc:
                raise StoreUnavailable(f"erasure repair: {type(exc).__name__}") from exc

    async def apply(self, lease: Lease, entries: Sequence[Entry]) -> BatchResult:
        """Apply ``entries`` (in stream order) under ``lease``; retried on shopper conflicts."""
        started = self.clock()
        for _ in range(MAX_CONFLICT_RETRIES):
            cached: Mapping[str, ShopperState] = self.cache.get(lease.partition, {})
            loaded = await self.store.load(lease.partition, entries, cached)
            st, fx = aggregates.apply(
                loaded.partition, entries, loaded.tombstoned, self.ops.partition
            )
            writes = shopper_writes(loaded, fx, self.ops.features)
            if self.archive is not None and fx.archive:
                self.store.hook("archive")
                self.archive.append(lease.partition, fx.archive)
            status, conflicts = await self.store.write(
                lease, loaded.partition.offset, st, fx, [w[:3] for w in writes],
                lease_ttl_ms=self.lease_ttl_ms, chunk=self.shopper_chunk,
            )  # fmt: skip
            if conflicts:  # someone changed these shoppers (erasure, or a stale owner)
                self.forget(lease.partition)
                continue
            self._remember(lease.partition, writes)
            await self._undo_racing_erasures(lease.partition, writes, fx)
            return BatchResult(status, fx, self.clock() - started)
        return BatchResult("CONFLICT")
