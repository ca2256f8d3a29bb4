"""Right to erasure, for what the segmenter keeps: the archive, the DLQ, the partition
stream, partition state.

The origin's erasure handler writes the tombstone (``tomb``) and deletes the shopper's keys,
then calls ``erase_from_dlq_and_archive``. From the tombstone on, the processor drops the
shopper's events (never archived or dead-lettered again), and ``replay`` skips them; this
function removes what was recorded before: archived lines (files rewritten atomically), dead
letters naming the shopper, the shopper's raw events still in the partition stream, and the
shopper's entries in the partition's session and exposure state.

A batch the processor had loaded before the tombstone may still write the shopper after the
erasure ran. So after every batch the processor asks which of its shoppers are tombstoned
now and, for those, runs ``erase_after_batch`` (keys, archive lines, partition state): the
tombstone is written before the keys are deleted, so any write landing after the deletion
is seen by that check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from segmenter import event
from segmenter.archive import rewrite_without
from segmenter.schema import DEFAULT_PARTITIONS, Keys, partition_of

__all__ = ["ErasureReport", "erase_after_batch", "erase_from_dlq_and_archive"]

_SCAN = 1000


@dataclass(frozen=True, slots=True)
class ErasureReport:
    archive_lines: int
    dead_letters: int
    partition_fields: int
    stream_entries: int = 0


async def _erase_dlq(r: aioredis.Redis, keys: Keys, sid: str) -> int:
    needle = sid.encode()
    removed, start = 0, "-"
    while True:
        page: Any = await r.xrange(keys.dlq, min=start, max="+", count=_SCAN)
        hits = [eid for eid, f in page if f.get(b"user") == needle or needle in f.get(b"raw", b"")]
        if hits:
            removed += int(await r.xdel(keys.dlq, *hits))
        if len(page) < _SCAN:
            return removed
        last = page[-1][0].decode()
        start = "(" + last


async def _erase_stream(r: aioredis.Redis, keys: Keys, sid: str, partition: int) -> int:
    """Delete the shopper's entries from the partition stream (processed or not): those that
    decode to the shopper's events or to a sign-in naming it (an identify's ``anon``), and
    undecodable ones that carry the id anyway."""
    stream, needle = keys.stream(partition), sid.encode()
    removed, start = 0, "-"
    while True:
        page: Any = await r.xrange(stream, min=start, max="+", count=_SCAN)
        hits = []
        for eid, fields in page:
            raw = (fields or {}).get(b"e", b"")
            if needle not in raw:
                continue
            decoded = event.decode(raw)
            if isinstance(decoded, event.Rejection) or sid in (decoded.user, decoded.anon):
                hits.append(eid)
        if hits:
            removed += int(await r.xdel(stream, *hits))
        if len(page) < _SCAN:
            return removed
        start = "(" + page[-1][0].decode()


async def _erase_partition(r: aioredis.Redis, keys: Keys, sid: str, partition: int) -> int:
    removed = int(await r.hdel(keys.exposed(partition), sid))
    prefix = f"{sid}|"
    sessions = [
        f async for f, _ in r.hscan_iter(keys.sessions(partition), match=f"{prefix}*", count=_SCAN)
    ]
    if sessions:
        removed += int(await r.hdel(keys.sessions(partition), *sessions))
        await r.zrem(keys.session_index(partition), *sessions)
    return removed


def _erase_lake(archive: Path, sid: str) -> int:
    """In a worker thread: importing DuckDB must not block the event loop either."""
    from segmenter import lake  # noqa: PLC0415 - DuckDB only when erasing

    return lake.erase(lake.lake_root(archive), sid)


async def erase_from_dlq_and_archive(
    redis: aioredis.Redis,
    keys: Keys,
    sid: str,
    archive_dir: str | Path,
    *,
    partitions: int = DEFAULT_PARTITIONS,
    signed_in_as: Iterable[str] = (),
) -> ErasureReport:
    """Remove shopper ``sid`` from the archive, the DLQ and partition state.

    Call after writing the tombstone. The shopper's own partition is rewritten in the
    archive (``partition_of(sid, partitions)``), and so are the partitions of the customers
    an anonymous ``sid`` signed in as (``signed_in_as``: their identify events name it);
    the Parquet lake's files holding the shopper are rewritten too (``archive_lines`` counts
    both). Raises ``redis`` errors unchanged.
    """
    p = partition_of(sid, partitions)
    where = sorted({p, *(partition_of(c, partitions) for c in signed_in_as)})
    root = Path(archive_dir)
    lines = 0
    if root.exists():  # the lake keeps hours the archive has pruned: erase there too
        for q in where:
            lines += await asyncio.to_thread(rewrite_without, root, q, sid)
        lines += await asyncio.to_thread(_erase_lake, root, sid)
    dead = await _erase_dlq(redis, keys, sid)
    fields = await _erase_partition(redis, keys, sid, p)
    entries = 0
    for q in where:
        entries += await _erase_stream(redis, keys, sid, q)
    return ErasureReport(lines, dead, fields, entries)


async def erase_after_batch(
    redis: aioredis.Redis, keys: Keys, sid: str, partition: int, archive_root: Path | None
) -> None:
    """Undo what a batch wrote for a shopper erased while it ran: the shopper's keys, the
    lines it archived, and its partition state. Raises ``redis`` and OS errors unchanged."""
    await redis.delete(*keys.shopper_keys(sid))
    if archive_root is not None and archive_root.exists():
        await asyncio.to_thread(rewrite_without, archive_root, partition, sid)
    await _erase_partition(redis, keys, sid, partition)
