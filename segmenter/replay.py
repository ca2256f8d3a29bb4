"""Replays and rebuilds from the archive.

``replay`` re-feeds the events that arrived in [from, to) into the partition streams: the
processor deduplicates what it already applied (event ids, 24 h) and treats the rest as
late for windowed features. ``rebuild`` runs the archive through the processor's own batch
code into an empty online store, partition by partition in arrival order, so a rebuild of
the same archive always yields the same feature values.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from segmenter import event
from segmenter.aggregates import Entry
from segmenter.archive import read_partition
from segmenter.batch import Applier, Operators
from segmenter.schema import STREAM_MAXLEN, Keys, partition_of, tombstone_digest
from segmenter.store import Store

__all__ = ["RebuildError", "RebuildReport", "parse_time_ms", "rebuild", "replay"]

_ARCHIVE_FIELDS = ("stream_id", "partition", "received_ms")


class RebuildError(RuntimeError):
    """The target store is not empty, or a lease could not be taken."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    events: int
    counts: dict[str, int]
    seconds: float

    def line(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        detail = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        events = f"{self.events} event{'' if self.events == 1 else 's'}"
        return f"rebuilt {events} in {self.seconds:.2f} s ({rate:,.0f}/s): {detail}"


def parse_time_ms(text: str) -> int:
    """Epoch milliseconds, or an ISO 8601 time (UTC when no offset is given)."""
    if text.isdigit():
        return int(text)
    t = datetime.fromisoformat(text)
    return int((t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp() * 1000)


def _entries(root: Path, partition: int, from_ms: int, to_ms: int) -> Iterator[Entry]:
    for doc in read_partition(root, partition, from_ms, to_ms):
        ev = event.validate({k: v for k, v in doc.items() if k not in _ARCHIVE_FIELDS})
        if isinstance(ev, event.Event):  # the archive only holds valid events
            yield Entry(str(doc["stream_id"]), b"", ev)


async def replay(r: aioredis.Redis, keys: Keys, root: Path, *, partitions: int, from_ms: int,
                 to_ms: int, archive_partitions: int | None = None) -> int:  # fmt: skip
    """Append archived events of [from, to) to the streams again; returns how many."""
    sent = 0
    batch: list[event.Event] = []

    async def flush() -> None:
        tombs = await r.hmget(keys.tombstones, [tombstone_digest(e.user) for e in batch])
        pipe = r.pipeline(transaction=False)
        live = [ev for ev, tomb in zip(batch, tombs, strict=True) if tomb is None]
        for ev in live:
            stream = keys.stream(partition_of(ev.user, partitions))
            pipe.xadd(stream, {"e": event.encode(ev)}, maxlen=STREAM_MAXLEN, approximate=True)
        sent_now = len(live)  # counted here: a cluster pipeline has no command_stack
        await pipe.execute()
        batch.clear()
        nonlocal sent
        sent += sent_now

    for p in range(archive_partitions or partitions):
        for entry in _entries(root, p, from_ms, to_ms):
            assert entry.event is not None
            batch.append(entry.event)
            if len(batch) >= 500:
                await flush()
    if batch:
        await flush()
    return sent


async def rebuild(r: aioredis.Redis, keys: Keys, root: Path, *, partitions: int, ops: Operators,
                  batch_size: int = 2000) -> RebuildReport:  # fmt: skip
    """Apply the whole archive to an empty store; raises ``RebuildError`` if it is not empty."""
    for p in range(partitions):
        if await r.hexists(keys.partition_meta(p), "offset"):
            raise RebuildError(f"partition {p} of prefix {keys.prefix!r} already has state")
    store = Store(r, keys, partitions=partitions)
    applier = Applier(store, ops, archive=None, lease_ttl_ms=600_000)
    owner = f"rebuild:{secrets.token_hex(4)}"
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    for p in range(partitions):
        lease = await store.acquire(p, owner, 600_000)
        if lease is None:
            raise RebuildError(f"partition {p} is leased by a running processor")
        batch: list[Entry] = []
        for entry in _entries(root, p, 0, 2**62):
            batch.append(entry)
            if len(batch) >= batch_size:
                counts.update(await _apply(applier, lease, batch))
                batch = []
        if batch:
            counts.update(await _apply(applier, lease, batch))
        await store.release(lease)
    counts.pop("skip", None)
    return RebuildReport(sum(counts.values()), dict(counts), time.perf_counter() - started)


async def _apply(applier: Applier, lease: Any, batch: list[Entry]) -> Counter[str]:
    result = await applier.apply(lease, batch)
    if result.status != "OK" or result.effects is None:
        raise RebuildError(f"partition {lease.partition}: commit returned {result.status}")
    return result.effects.counters
