"""Infrastructure failures (archive, Redis refusing writes, a lost consumer group) delay
events but never dead-letter them, and the processor carries on once they are over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.exceptions import ResponseError

from segmenter.connection import connect, connect_sync
from segmenter.processor import Processor
from segmenter.schema import GROUP
from segmenter.settings import ProcessorSettings
from tests.support import segmenter as support
from tests.support.segmenter import KEYS, PARTITIONS
from tests.support.timing import async_wait_until


def _totals(client: redis.Redis) -> dict[str, int]:
    totals: dict[str, int] = {}
    for p in range(PARTITIONS):
        for k, v in client.hgetall(KEYS.partition_meta(p)).items():
            if k.decode() in ("applied", "duplicate", "late", "dead", "erased"):
                totals[k.decode()] = totals.get(k.decode(), 0) + int(v)
    return totals


def _after(n: int, then: Callable[[], object]) -> support.Hook:
    """A store hook that calls ``then()`` once, at the ``n``-th write step."""
    seen = [0]

    def hook(step: str) -> None:
        seen[0] += 1
        if seen[0] == n:
            then()

    return hook


def test_an_archive_that_cannot_be_written_delays_but_never_dead_letters(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    entries = support.valid_entries(60)
    support.load(redis_client, entries)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the archive's directory should be")
    # One delivery allowed: a single re-read of a batch would dead-letter it.
    s = support.settings(redis_url, blocker / "archive", max_deliveries=1)
    support.run_until_drained(redis_url, s, hook=_after(8, blocker.unlink))

    assert support.dead_letters(redis_client) == []
    assert _totals(redis_client) == {"applied": len(entries)}
    assert any((blocker / "archive").glob("dt=*/hour=*/*.jsonl.gz"))


class _Running:
    """An in-process processor on ``url`` and a synchronous client, for one ``asyncio.run``."""

    def __init__(self, url: str, s: ProcessorSettings, hook: support.Hook | None = None) -> None:
        self.client = connect(url)
        self.sync = connect_sync(url)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(Processor(s, self.client, hook=hook).run(self.stop))

    async def until(self, done: Callable[[], bool], what: str) -> None:
        def progressed() -> bool:
            assert not self.task.done(), self.task.exception()
            return done()

        await async_wait_until(progressed, 30, f"processor stalled: {what}")

    async def close(self) -> None:
        self.stop.set()
        await self.task
        await self.client.aclose()
        self.sync.close()


def _all_owned(client: redis.Redis) -> bool:
    return all(client.hget(KEYS.partition_meta(p), "owner") for p in range(PARTITIONS))


def _applied(client: redis.Redis) -> bool:
    """Every stream's entries applied and acknowledged (False while a group is missing)."""
    try:
        return support.drained(client)
    except ResponseError:
        return False


@pytest.mark.parametrize("writes", ["batched", "per-slot"])
def test_redis_refusing_writes_delays_but_never_dead_letters(redis_factory, writes: str) -> None:
    server = redis_factory()
    client = redis.Redis.from_url(server.url)
    entries = support.valid_entries(60)
    support.load(client, [])
    # One delivery allowed: a single re-read of a batch would dead-letter it.
    s = support.settings(server.url, "", max_deliveries=1, writes=writes)

    async def go() -> None:
        run = _Running(server.url, s, _after(12, lambda: client.config_set("maxmemory", "0")))
        try:
            await run.until(lambda: _all_owned(client), "no leases")
            pipe = client.pipeline(transaction=True)
            for sid, p, raw in entries:
                pipe.xadd(KEYS.stream(p), {"e": raw}, id=sid)
            pipe.config_set("maxmemory", "1")  # every write is refused with OOM from now on
            pipe.execute()
            await run.until(lambda: _applied(client), "not drained")
        finally:
            await run.close()

    try:
        asyncio.run(go())
        assert support.dead_letters(client) == []
        assert _totals(client) == {"applied": len(entries)}
    finally:
        client.config_set("maxmemory", "0")
        client.close()


@pytest.mark.parametrize("loss", ["group", "everything"])
def test_the_processor_recreates_a_consumer_group_redis_lost(
    redis_url: str, redis_client: redis.Redis, loss: str
) -> None:
    first, second = support.valid_entries(80, seed=4)[:40], support.valid_entries(80, seed=4)[40:]
    support.load(redis_client, first)

    async def go() -> None:
        run = _Running(redis_url, support.settings(redis_url, ""))
        try:
            await run.until(lambda: _applied(run.sync), "first entries")
            if loss == "group":  # a failover to a replica that never saw the group
                for p in range(PARTITIONS):
                    run.sync.xgroup_destroy(KEYS.stream(p), GROUP)
            else:  # a restart without persistence, or a FLUSHALL
                run.sync.flushall()
            for sid, p, raw in second:  # as the collector appends: no group created
                run.sync.xadd(KEYS.stream(p), {"e": raw}, id=sid)
            await run.until(lambda: _applied(run.sync), "entries after the loss")
        finally:
            await run.close()

    asyncio.run(go())
    totals = _totals(redis_client)
    # The group is recreated from the start of the stream: what was applied before is only
    # acknowledged again (the partition offsets), never applied twice.
    expected = len(first) + len(second) if loss == "group" else len(second)
    assert totals == {"applied": expected}
    assert support.dead_letters(redis_client) == []
