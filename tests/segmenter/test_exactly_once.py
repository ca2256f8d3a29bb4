"""Exactly-once effects: every input accounted for, and SIGKILLs that change nothing."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import redis

from tests.support import segmenter as support
from tests.support.segmenter import KEYS, PARTITIONS
from tests.support.timing import POLL_S, scaled

# Both ways of writing a batch (``P13N_WRITES``): one script per batch (single Redis) and
# one-slot scripts, shoppers then the partition's commit (what Redis Cluster runs).
WRITES = pytest.mark.parametrize("writes", ["batched", "per-slot"])


def _totals(client: redis.Redis) -> dict[str, int]:
    totals: dict[str, int] = {}
    for p in range(PARTITIONS):
        for k, v in client.hgetall(KEYS.partition_meta(p)).items():
            if k.decode() in ("applied", "duplicate", "late", "dead", "erased"):
                totals[k.decode()] = totals.get(k.decode(), 0) + int(v)
    return totals


@WRITES
def test_every_entry_is_applied_duplicate_late_or_dead_lettered(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, writes: str
) -> None:
    entries = support.mixed_stream(1500)
    support.load(redis_client, entries)
    support.run_until_drained(redis_url, support.settings(redis_url, tmp_path / "a", writes=writes))

    totals = _totals(redis_client)
    assert sum(totals.values()) == len(entries)
    dead = support.dead_letters(redis_client)
    assert len(dead) == totals["dead"] > 0
    reasons = {f[b"field"] for f in dead}
    assert reasons == {b"$", b"v", b"ts"}  # undecodable, unknown version, future
    assert all(f[b"source"] == b"processor" and f[b"raw"] for f in dead)
    assert totals["duplicate"] > 0 and totals["late"] > 0
    late = sum(int(redis_client.hget(KEYS.late_counts(p), "total") or 0) for p in range(PARTITIONS))
    assert late == totals["late"]


@WRITES
def test_rerun_of_the_same_entries_changes_nothing(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, writes: str
) -> None:
    entries = support.mixed_stream(600, seed=3)
    support.load(redis_client, entries)
    s = support.settings(redis_url, tmp_path / "a", batch_max_events=50, writes=writes)
    support.run_until_drained(redis_url, s)
    before = support.snapshot(redis_client)
    # Redeliver everything: reset the group as if no entry had ever been acknowledged.
    for p in range(PARTITIONS):
        redis_client.xgroup_setid(KEYS.stream(p), "segmenter", "0")
    support.run_until_drained(redis_url, s)
    assert support.snapshot(redis_client) == before


@pytest.mark.slow
@pytest.mark.timeout(150)
@WRITES
def test_sigkill_at_random_writes_leaves_exact_counts(
    redis_factory, tmp_path: Path, writes: str
) -> None:
    # Enough entries that the faster (batched) processor still meets ten kills before draining.
    entries = support.mixed_stream(10_000, seed=11)
    reference = redis_factory()
    ref = redis.Redis.from_url(reference.url)
    support.load(ref, entries)
    support.run_until_drained(
        reference.url, support.settings(reference.url, tmp_path / "ref", writes=writes)
    )

    victim = redis_factory()
    client = redis.Redis.from_url(victim.url)
    support.load(client, entries)
    rng = random.Random(5)
    kills = 0
    deadline = time.monotonic() + scaled(120)
    while not support.drained(client):
        assert time.monotonic() < deadline, "did not drain"
        hooked = kills < 10 and kills % 3 != 2  # else a SIGKILL from outside at a random time
        proc = support.spawn(
            victim.url, tmp_path / "victim",
            P13N_BATCH_MAX_EVENTS=str(rng.choice((7, 25, 60)) if hooked else 5),
            P13N_TEST_KILL_AT_WRITE=str(rng.randint(1, 40) if hooked else 0),
            P13N_WRITES=writes,
        )  # fmt: skip
        kill_after = time.monotonic() + rng.uniform(0.5, 1.2)
        while proc.poll() is None and not support.drained(client):
            if kills < 10 and not hooked and time.monotonic() > kill_after:
                proc.kill()
            time.sleep(POLL_S)
        if proc.poll() is not None:
            assert proc.poll() == -9, proc.tail()
            kills += 1
        support.stop(proc)
    assert kills >= 6
    assert support.snapshot(client) == support.snapshot(ref)
    assert support.dead_letters(client) and len(support.dead_letters(client)) == len(
        support.dead_letters(ref)
    )
    ref.close()
    client.close()
