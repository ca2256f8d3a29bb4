"""Processes sharing partitions: one member per process, whatever the consumer names."""

from __future__ import annotations

import asyncio
import collections
import os

import redis

from segmenter.connection import connect
from segmenter.processor import Processor
from segmenter.schema import GROUP
from segmenter.settings import ProcessorSettings
from tests.support import segmenter as support
from tests.support.segmenter import KEYS, PARTITIONS
from tests.support.timing import async_wait_until, wait_until

TRUSTED = {"P13N_TRUSTED_LOCAL": "1"}  # a test's own settings may use the dev segment key


def test_the_default_consumer_name_is_unique_per_process() -> None:
    a = ProcessorSettings.from_env(TRUSTED).consumer
    assert a.startswith("segmenter-") and a.endswith(f"-{os.getpid()}")
    assert ProcessorSettings.from_env({**TRUSTED, "P13N_CONSUMER": "seg-a"}).consumer == "seg-a"


def _owners(client: redis.Redis) -> collections.Counter[bytes]:
    """Partitions held per owner (b"" for none)."""
    return collections.Counter(
        client.hget(KEYS.partition_meta(p), "owner") or b"" for p in range(PARTITIONS)
    )


def _shared(owners: collections.Counter[bytes]) -> bool:
    return b"" not in owners and sorted(owners.values()) == [2, 2]


def test_two_processes_with_one_consumer_name_share_the_partitions(
    redis_url: str, redis_client: redis.Redis
) -> None:
    support.load(redis_client, [])
    s = support.settings(redis_url, "")  # both named "seg-test", as two hosts named alike

    async def go() -> collections.Counter[bytes]:
        client = connect(redis_url)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(Processor(s, client).run(stop)) for _ in range(2)]
        try:

            def shared() -> dict | None:
                assert not any(t.done() for t in tasks)
                owners = _owners(redis_client)
                return owners if _shared(owners) else None

            return await async_wait_until(shared, 30, "partitions not shared")
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await client.aclose()

    assert len(asyncio.run(go())) == 2


def test_a_new_owner_deletes_consumers_left_with_nothing_pending(
    redis_url: str, redis_client: redis.Redis
) -> None:
    entries = support.valid_entries(40)
    support.load(redis_client, entries)
    stream = KEYS.stream(entries[0][1])
    redis_client.xgroup_createconsumer(stream, GROUP, "segmenter-gone-1")  # a process gone
    redis_client.xreadgroup(GROUP, "segmenter-gone-2", {stream: ">"}, count=1)  # died mid-batch
    wait_until(
        lambda: min(int(c["idle"]) for c in redis_client.xinfo_consumers(stream, GROUP)) >= 50,
        10,
        "both consumers idle for the claim threshold",
    )

    support.run_until_drained(redis_url, support.settings(redis_url, "", claim_idle_ms=50))

    names = [c["name"] for c in redis_client.xinfo_consumers(stream, GROUP)]
    assert names == [b"seg-test"]
    totals = sum(int(redis_client.hget(KEYS.partition_meta(p), "applied") or 0)
                 for p in range(PARTITIONS))  # fmt: skip
    assert totals == len(entries)
