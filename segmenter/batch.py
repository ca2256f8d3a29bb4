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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from segmenter import aggregates, features
from segmenter.aggregates import Entry, PartitionEffects, PartitionParams, parse_id
from segmenter.archive import ArchiveWriter
from segmenter.erasure import erase_after_batch
from segmenter.features import FeatureParams, ShopperState
from segmenter.settings import DEFAULT_SHOPPER_CACHE, DEFAULT_SHOPPER_CACHE_BYTES
from segmenter.store import Lease, Loaded, Store, StoreUnavailable

__all__ = ["Applier", "BatchResult", "Operators", "ShopperCache", "state_bytes"]

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
        mine = by_user.get(e.event.user)  # not setdefault: a list per event
        if mine is None:
            mine = by_user[e.event.user] = []
        mine.append(e)
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


def _written(writes: Sequence[tuple[str, str, list[Any], ShopperState]],
             fx: PartitionEffects) -> list[str]:  # fmt: skip
    """The shoppers a batch wrote something of: features, or archive lines."""
    return [w[0] for w in writes] + [e.event.user for e in fx.archive if e.event]


class _PartitionView(Mapping[str, ShopperState]):
    """One partition's shoppers in a ``ShopperCache``, as ``Store.load`` reads them."""

    __slots__ = ("_data", "_partition")

    def __init__(self, data: Mapping[tuple[int, str], ShopperState], partition: int) -> None:
        self._data = data
        self._partition = partition

    def __getitem__(self, user: str) -> ShopperState:
        return self._data[self._partition, user]

    def __contains__(self, user: object) -> bool:
        return (self._partition, user) in self._data

    def __iter__(self) -> Iterator[str]:
        return (u for p, u in self._data if p == self._partition)

    def __len__(self) -> int:
        return sum(1 for p, _ in self._data if p == self._partition)


# Approximate bytes a cached state holds (CPython 3.11, measured with tracemalloc): the
# object with its empty containers, then per entry of each; item and category ids included.
_STATE_BYTES = 512
_ENTRY_BYTES = {"scalars": 150, "recent": 70, "cart": 100, "bought": 240, "aff": 210, "exp": 180}


def state_bytes(s: ShopperState) -> int:
    """Approximate memory of one shopper state: from ~0.9 KB (one visit) to ~55 KB (a
    shopper at every per-shopper cap: 50 recent, 200 bought, 50 categories)."""
    e = _ENTRY_BYTES
    return (_STATE_BYTES + e["scalars"] * len(s.scalars) + e["recent"] * len(s.recent)
            + e["cart"] * len(s.cart) + e["bought"] * len(s.bought) + e["aff"] * len(s.aff)
            + e["exp"] * len(s.exp))  # fmt: skip


_ONE_EVENT = frozenset({"0", "1"})  # the ``events`` counts of states not worth keeping


class ShopperCache:
    """The shopper states this process wrote last, least recently written dropped first.

    One bound over every partition: a process that owns more partitions must not hold more
    shoppers (a per-partition bound times the partitions grew past what the host has). Bound
    by count and by approximate bytes: a state's size varies sixtyfold with its history, so
    a count alone let 20,000 long-time shoppers hold over a gigabyte.
    """

    def __init__(
        self, maxsize: int = DEFAULT_SHOPPER_CACHE, max_bytes: int = DEFAULT_SHOPPER_CACHE_BYTES
    ) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.bytes = 0
        self._data: OrderedDict[tuple[int, str], ShopperState] = OrderedDict()
        self._sizes: dict[tuple[int, str], int] = {}

    def view(self, partition: int) -> Mapping[str, ShopperState]:
        """The cached shoppers of ``partition``."""
        return _PartitionView(self._data, partition)

    def put(self, partition: int, user: str, state: ShopperState) -> None:
        """Remember ``state`` as the last written for ``user``, once the shopper has more
        than one event: a shop's new ids are mostly one-visit ones (bots given an id, bounces),
        whose states would fill the cache for hours (~1 KB at ~1.8 new ids/s in the soak)
        and are never read again; a shopper who comes back is read once more, then kept."""
        if state.scalars.get("events", "1") in _ONE_EVENT:
            self.pop(partition, user)  # an older state of it must not stay behind
            return
        key = (partition, user)
        size = state_bytes(state)
        self.bytes += size - self._sizes.get(key, 0)
        self._sizes[key] = size
        self._data[key] = state
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize or self.bytes > self.max_bytes:
            self._drop(self._data.popitem(last=False)[0])

    def _drop(self, key: tuple[int, str]) -> None:
        self.bytes -= self._sizes.pop(key, 0)

    def pop(self, partition: int, user: str) -> None:
        """Forget one shopper."""
        if self._data.pop((partition, user), None) is not None:
            self._drop((partition, user))

    def forget(self, partition: int) -> None:
        """Forget every shopper of ``partition``."""
        for key in [k for k in self._data if k[0] == partition]:
            del self._data[key]
            self._drop(key)

    def __len__(self) -> int:
        return len(self._data)


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
        cache_size: int = DEFAULT_SHOPPER_CACHE,
        cache_bytes: int = DEFAULT_SHOPPER_CACHE_BYTES,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.store = store
        self.ops = ops
        self.archive = archive
        self.lease_ttl_ms = lease_ttl_ms
        self.shopper_chunk = shopper_chunk
        self.clock = clock
        # Shopper states this process wrote last, per partition: only a partition's owner
        # writes its shoppers, and every write is a compare-and-set on last_id, so a stale
        # entry (erasure, expiry, another owner) shows up as a conflict and is reloaded.
        self.cache = ShopperCache(cache_size, cache_bytes)

    def forget(self, partition: int) -> None:
        """Drop the cached shoppers of a partition (its lease was lost or released)."""
        self.cache.forget(partition)

    def _remember(
        self, partition: int, writes: Sequence[tuple[str, str, list[Any], ShopperState]]
    ) -> None:
        for user, _, _, state in writes:
            self.cache.put(partition, user, state)

    async def _undo_racing_erasures(
        self,
        partition: int,
        writes: Sequence[tuple[str, str, list[Any], ShopperState]],
        fx: PartitionEffects,
        erased: list[str] | None,
    ) -> None:
        """Shoppers erased after this batch was loaded: remove what it wrote of them
        (``erased``: as the write found them, or None to ask)."""
        if erased is None:
            erased = await self.store.erased(_written(writes, fx))
        for user in erased:
            self.cache.pop(partition, user)
            root = self.archive.root if self.archive is not None else None
            try:
                await erase_after_batch(self.store.r, self.store.keys, user, partition, root)
            except (RedisError, OSError) as exc:
                raise StoreUnavailable(f"erasure repair: {type(exc).__name__}") from exc

    async def apply(self, lease: Lease, entries: Sequence[Entry]) -> BatchResult:
        """Apply ``entries`` (in stream order) under ``lease``; retried on shopper conflicts."""
        started = self.clock()
        for _ in range(MAX_CONFLICT_RETRIES):
            cached = self.cache.view(lease.partition)
            loaded = await self.store.load(lease.partition, entries, cached)
            st, fx = aggregates.apply(
                loaded.partition, entries, loaded.tombstoned, self.ops.partition
            )
            writes = shopper_writes(loaded, fx, self.ops.features)
            if self.archive is not None and fx.archive:
                self.store.hook("archive")
                self.archive.append(lease.partition, fx.archive)
            status, conflicts, erased = await self.store.write(
                lease, loaded.partition.offset, st, fx, [w[:3] for w in writes],
                lease_ttl_ms=self.lease_ttl_ms, chunk=self.shopper_chunk,
                watch=_written(writes, fx),
            )  # fmt: skip
            if conflicts:  # someone changed these shoppers (erasure, or a stale owner)
                self.forget(lease.partition)
                continue
            self._remember(lease.partition, writes)
            await self._undo_racing_erasures(lease.partition, writes, fx, erased)
            return BatchResult(status, fx, self.clock() - started)
        return BatchResult("CONFLICT")
