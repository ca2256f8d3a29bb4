"""The segmenter's test helpers: load streams with explicit ids, run the processor (in process
until drained, or as ``p13n segmenter run`` children), snapshot the store."""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis

from ops import shop
from segmenter import event
from segmenter.connection import connect, connect_sync
from segmenter.event import Event
from segmenter.processor import Processor
from segmenter.schema import GROUP, Keys, partition_of
from segmenter.settings import ProcessorSettings
from segmenter.store import Hook
from tests.support.process import Process
from tests.support.servers import CLI
from tests.support.timing import POLL_S, scaled, wait_until

PARTITIONS = 4
KEYS = Keys()
# Bookkeeping that legitimately differs between runs (who held the lease, and how often).
# Synthetic events arrive in November 2023: keep their archive whatever today's date.
RETENTION_DAYS = 365_000
_BOOKKEEPING = {b"owner", b"token", b"lease_until_ms"}
STOP_GRACE_S = 20.0  # a processor finishes the batch in hand before it exits


def settings(url: str, archive: Path | str = "", **kw: Any) -> ProcessorSettings:
    base = ProcessorSettings(
        redis_url=url, partitions=PARTITIONS, archive_dir=str(archive), lists_interval_s=0,
        lease_ttl_ms=400, consumer="seg-test", archive_retention_days=RETENTION_DAYS,
    )  # fmt: skip
    return replace(base, **kw)


def mixed_stream(n: int, seed: int = 7) -> list[tuple[str, int, bytes]]:
    """(stream id, partition, raw) with duplicates, late, future and undecodable entries."""
    rng = random.Random(seed)
    evs = list(shop.events(n, seed=seed, shop=shop.Shop(items=300, shoppers=150)))
    out: list[tuple[str, int, bytes]] = []
    for i, ev in enumerate(evs):
        id_ms = ev.ts
        roll = rng.random()
        if roll < 0.03 and out:  # a client retry of an earlier event
            ev = evs[rng.randrange(i)]
        elif roll < 0.05:  # late: stamped 20 minutes before arrival
            ev = replace(ev, ts=ev.ts - 20 * 60_000, event_id=f"late-{i}")
        elif roll < 0.06:  # future: an hour after arrival
            ev = replace(ev, ts=ev.ts + 3_600_000, event_id=f"fut-{i}")
        raw = event.encode(ev)
        if 0.06 <= roll < 0.07:
            raw = b"\xc1not msgpack"
        elif 0.07 <= roll < 0.075:
            raw = raw.replace(b"\xa1v\x01", b"\xa1v\x63")  # unknown version (99)
        out.append((f"{id_ms}-{i}", partition_of(ev.user, PARTITIONS), raw))
    return out


def load(client: redis.Redis, entries: list[tuple[str, int, bytes]]) -> None:
    pipe = client.pipeline(transaction=False)
    for p in range(PARTITIONS):
        pipe.xgroup_create(KEYS.stream(p), GROUP, id="0", mkstream=True)
    for sid, p, raw in entries:
        pipe.xadd(KEYS.stream(p), {"e": raw}, id=sid)
    pipe.execute()


def drained(client: redis.Redis) -> bool:
    for p in range(PARTITIONS):
        last = client.xinfo_stream(KEYS.stream(p))["last-generated-id"]
        if last != b"0-0" and client.hget(KEYS.partition_meta(p), "offset") != last:
            return False
        if client.xpending(KEYS.stream(p), GROUP)["pending"]:
            return False
    return True


def wait_drained(client: redis.Redis, timeout_s: float, *procs: Process) -> None:
    """Poll (scaled deadline) until every stream is drained; fails at once if one of ``procs``
    has exited."""

    def check() -> bool:
        for proc in procs:
            assert proc.poll() is None, f"{proc.name} exited ({proc.poll()}):\n{proc.tail()}"
        return drained(client)

    wait_until(check, timeout_s, "the streams were not drained")


def valid_entries(n: int, seed: int = 3) -> list[tuple[str, int, bytes]]:
    """(stream id, partition, raw) of ``n`` valid events in arrival order, nothing to reject."""
    evs = shop.events(n, seed=seed, shop=shop.Shop(items=300, shoppers=150))
    return [(f"{e.ts}-{i}", partition_of(e.user, PARTITIONS), event.encode(e)) for i, e in
            enumerate(evs)]  # fmt: skip


def run_until_drained(
    url: str, s: ProcessorSettings, timeout_s: float = 60, hook: Hook | None = None
) -> None:
    """Run an in-process processor until every stream is applied and acknowledged."""

    async def go() -> None:
        client = connect(url)
        sync = connect_sync(url)
        stop = asyncio.Event()
        task = asyncio.create_task(Processor(s, client, hook=hook).run(stop))
        deadline = time.monotonic() + scaled(timeout_s)
        try:
            while not drained(sync):
                assert time.monotonic() < deadline, "processor did not drain in time"
                assert not task.done(), task.exception()
                await asyncio.sleep(POLL_S)
        finally:
            stop.set()
            await task
            await client.aclose()
            sync.close()

    asyncio.run(go())


def spawn(url: str, archive: Path, **env: str) -> Process:
    """``p13n segmenter run`` as a real child process (its output in ``archive``'s parent)."""
    full = {
        **os.environ, "P13N_REDIS_URL": url, "P13N_PARTITIONS": str(PARTITIONS),
        "P13N_ARCHIVE_DIR": str(archive), "P13N_LISTS_INTERVAL_S": "0",
        "P13N_LEASE_TTL_MS": "400", "P13N_CONSUMER": "seg-1",
        "P13N_ARCHIVE_RETENTION_DAYS": str(RETENTION_DAYS),
        "P13N_TRUSTED_LOCAL": "1",  # a test's processor: the dev segment key is fine
        **env,
    }  # fmt: skip
    name = f"segmenter-{full['P13N_CONSUMER']}"
    return Process([*CLI, "segmenter", "run"], name=name, env=full).start()


def stop(proc: Process) -> None:
    """SIGTERM (it finishes its batch and commits), SIGKILL after the grace; close all."""
    proc.stop(grace_s=STOP_GRACE_S)
    proc.close()


def snapshot(client: redis.Redis, prefix: str = "p13n") -> dict[bytes, Any]:
    """Every value under ``prefix`` except streams, the DLQ index and lease bookkeeping."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        kind = client.type(key)
        if kind == b"hash":
            h = client.hgetall(key)
            out[key] = {k: v for k, v in h.items() if k not in _BOOKKEEPING}
        elif kind == b"list":
            out[key] = client.lrange(key, 0, -1)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"string":
            out[key] = client.get(key)
    out.pop(KEYS.dlq_sources.encode(), None)
    out.pop(KEYS.members.encode(), None)
    return out


def dead_letters(client: redis.Redis) -> list[dict[bytes, bytes]]:
    return [f for _, f in client.xrange(KEYS.dlq)]


def valid_events(entries: list[tuple[str, int, bytes]]) -> list[Event]:
    return [e for _, _, raw in entries if isinstance(e := event.decode(raw), Event)]
