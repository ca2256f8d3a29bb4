"""Archive, rebuild determinism, replay, and erasure reaching the archive and the DLQ."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from segmenter import archive
from segmenter.connection import connect
from segmenter.erasure import erase_from_dlq_and_archive
from segmenter.processor import Processor, operators_for
from segmenter.replay import rebuild, replay
from segmenter.schema import Keys, tombstone_digest
from segmenter.segments import load_rules
from tests.support import segmenter as support
from tests.support.segmenter import KEYS, PARTITIONS
from tests.support.timing import async_wait_until


def _features(snap: dict) -> dict:
    """Everything but partition meta (it counts dead letters, which the archive never holds)."""
    return {k: v for k, v in snap.items() if not k.endswith(b":meta") and b"{dlq}" not in k}


def _rebuild(url: str, root: Path) -> str:
    async def go() -> str:
        client = connect(url)
        ops = operators_for(support.settings(url), load_rules())
        report = await rebuild(client, Keys(), root, partitions=PARTITIONS, ops=ops, batch_size=333)
        await client.aclose()
        return report.line()

    return asyncio.run(go())


def test_rebuild_from_the_archive_is_identical_and_repeatable(
    redis_url, redis_client, redis_factory, tmp_path
) -> None:
    entries = support.mixed_stream(1200, seed=21)
    support.load(redis_client, entries)
    support.run_until_drained(
        redis_url, support.settings(redis_url, tmp_path / "arc", batch_max_events=40)
    )
    live = _features(support.snapshot(redis_client))

    lines = sum(1 for p in range(PARTITIONS) for _ in archive.read_partition(tmp_path / "arc", p))
    dead = len(support.dead_letters(redis_client))
    assert lines == len(entries) - dead  # every valid entry archived once, in order

    first, second = redis_factory(), redis_factory()
    line = _rebuild(first.url, tmp_path / "arc")
    assert line.startswith(f"rebuilt {lines} events in ")
    _rebuild(second.url, tmp_path / "arc")
    a = _features(support.snapshot(redis.Redis.from_url(first.url)))
    b = _features(support.snapshot(redis.Redis.from_url(second.url)))
    assert a == b == live


def test_replay_over_an_intact_store_is_all_duplicates(redis_url, redis_client, tmp_path) -> None:
    entries = support.mixed_stream(500, seed=4)
    support.load(redis_client, entries)
    s = support.settings(redis_url, tmp_path / "arc")
    support.run_until_drained(redis_url, s)
    before = _features(support.snapshot(redis_client))
    applied = sum(
        int(redis_client.hget(KEYS.partition_meta(p), "applied")) for p in range(PARTITIONS)
    )

    async def go() -> int:
        client = connect(redis_url)
        n = await replay(
            client, KEYS, tmp_path / "arc", partitions=PARTITIONS, from_ms=0, to_ms=2**62
        )
        await client.aclose()
        return n

    sent = asyncio.run(go())
    assert sent > 0
    support.run_until_drained(redis_url, support.settings(redis_url, tmp_path / "arc2"))
    after = sum(
        int(redis_client.hget(KEYS.partition_meta(p), "applied")) for p in range(PARTITIONS)
    )
    assert after == applied
    assert _features(support.snapshot(redis_client)) == before


def test_erasure_reaches_archive_dlq_and_rebuilds(
    redis_url, redis_client, redis_factory, tmp_path
) -> None:
    entries = support.mixed_stream(800, seed=9)
    support.load(redis_client, entries)
    victim = support.valid_events(entries)[0].user
    redis_client.xadd(
        KEYS.dlq, {"reason": "x", "user": victim, "raw": b"{}", "source": "collector"}
    )
    support.run_until_drained(redis_url, support.settings(redis_url, tmp_path / "arc"))

    # What the origin's erasure handler does, then the call it makes.
    redis_client.hset(KEYS.tombstones, tombstone_digest(victim), 1)
    redis_client.delete(*KEYS.shopper_keys(victim))

    async def go():
        client = connect(redis_url)
        report = await erase_from_dlq_and_archive(
            client, KEYS, victim, tmp_path / "arc", partitions=PARTITIONS
        )
        await client.aclose()
        return report

    report = asyncio.run(go())
    assert report.archive_lines > 0 and report.dead_letters >= 1
    docs = [d for p in range(PARTITIONS) for d in archive.read_partition(tmp_path / "arc", p)]
    assert docs and all(d["user"] != victim for d in docs)
    assert all(f.get(b"user") != victim.encode() for f in support.dead_letters(redis_client))
    fresh = redis_factory()
    _rebuild(fresh.url, tmp_path / "arc")
    assert not any(victim.encode() in k for k in support.snapshot(redis.Redis.from_url(fresh.url)))


def test_retention_is_enforced_without_list_builds(redis_url, redis_client, tmp_path) -> None:
    old = tmp_path / "a" / "dt=2020-01-01" / "hour=00"
    old.mkdir(parents=True)
    (old / "p0-1577836800000-0-abcd1234.jsonl.gz").write_bytes(b"")
    support.load(redis_client, [])
    s = support.settings(redis_url, tmp_path / "a", lists_interval_s=0, archive_retention_days=1)

    async def go() -> None:
        client = connect(redis_url)
        stop = asyncio.Event()
        task = asyncio.create_task(Processor(s, client).run(stop))
        try:
            # polled, not timed: it goes on the first tick
            await async_wait_until(lambda: not old.exists() or task.done(), 30, "old file kept")
        finally:
            stop.set()
            await task
            await client.aclose()

    asyncio.run(go())
    assert not old.exists()


def test_reading_a_missing_archive_is_an_error_not_an_empty_archive(tmp_path) -> None:
    assert list(archive.read_partition(tmp_path, 0)) == []
    with pytest.raises(FileNotFoundError):
        list(archive.read_partition(tmp_path / "nope", 0))
