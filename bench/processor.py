"""Processor throughput against an XREADGROUP + XACK baseline, and event-to-feature freshness.

1. Loads a synthetic stream (Zipf items, sessions, funnels, exposures) into 8 partitions of a
   throwaway Redis, runs the processor until every entry is committed: events/s.
2. Baseline, same run, same entries: a second consumer group that only reads and acks.
3. Starts the origin (uvicorn, real HTTP) and, from a separate load-generator process, offers
   2,000 events/s to ``POST /v1/events`` (batches of 25 every 12.5 ms) while the processor
   runs; freshness = commit time of the batch applying an event minus the collector's
   receipt (the stream id's time).

Every feature is on (recent, cart, bought, affinity, popularity, co-visitation, experiments,
segments) and the archive is written. Last line::

    processor_events_per_s=<N> baseline_events_per_s=<B> ratio=<N/B> freshness_p50_ms=<a>
    freshness_p99_ms=<b>
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/origin.py is named like the ``origin`` package: drop this folder from the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import httpx  # noqa: E402
import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from origin.localredis import RedisServer, free_port  # noqa: E402
from segmenter import event, synthetic  # noqa: E402
from segmenter.aggregates import PartitionEffects  # noqa: E402
from segmenter.metrics import Metrics  # noqa: E402
from segmenter.processor import Processor  # noqa: E402
from segmenter.schema import GROUP, Keys, partition_of  # noqa: E402
from segmenter.settings import ProcessorSettings  # noqa: E402

PARTITIONS = 8
EVENTS = int(os.environ.get("BENCH_EVENTS", "150000"))
RATE = 2000
BATCH = 25
FRESH_S = float(os.environ.get("BENCH_FRESH_S", "10"))
KEYS = Keys()


class Recording(Metrics):
    """Metrics that also keep every freshness sample."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[float] = []

    def observe_batch(self, fx: PartitionEffects, apply_s: float, commit_ms: int) -> None:
        super().observe_batch(fx, apply_s, commit_ms)
        self.samples += [commit_ms - e.key[0] for e in fx.accepted]


def load(url: str) -> int:
    r = redis.Redis.from_url(url)
    pipe = r.pipeline(transaction=False)
    for p in range(PARTITIONS):
        pipe.xgroup_create(KEYS.stream(p), GROUP, id="0", mkstream=True)
        pipe.xgroup_create(KEYS.stream(p), "baseline", id="0")
    for n, ev in enumerate(synthetic.events(EVENTS, seed=42), 1):
        pipe.xadd(KEYS.stream(partition_of(ev.user, PARTITIONS)), {"e": event.encode(ev)})
        if n % 5000 == 0:
            pipe.execute()
    pipe.execute()
    r.close()
    return EVENTS


def drained(r: redis.Redis, group: str) -> bool:
    for p in range(PARTITIONS):
        for g in r.xinfo_groups(KEYS.stream(p)):
            if g["name"].decode() == group and (g["lag"] or g["pending"]):
                return False
    return True


async def run_processor(s: ProcessorSettings, until: asyncio.Event, metrics: Metrics) -> None:
    client = aioredis.Redis.from_url(s.redis_url, max_connections=64)
    stop = asyncio.Event()
    task = asyncio.create_task(Processor(s, client, metrics=metrics).run(stop))
    await until.wait()
    stop.set()
    await task
    await client.aclose()


async def throughput(s: ProcessorSettings) -> float:
    sync = redis.Redis.from_url(s.redis_url)
    done = asyncio.Event()
    task = asyncio.create_task(run_processor(s, done, Metrics()))
    while not all(sync.hget(KEYS.partition_meta(p), "owner") for p in range(PARTITIONS)):
        await asyncio.sleep(0.005)
    t0 = time.perf_counter()
    while not drained(sync, GROUP):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    done.set()
    await task
    sync.close()
    return EVENTS / elapsed


async def baseline(url: str) -> float:
    client = aioredis.Redis.from_url(url, max_connections=64)

    async def one(p: int) -> None:
        stream = KEYS.stream(p)
        while True:
            reply = await client.xreadgroup("baseline", "b1", {stream: ">"}, count=1000)
            if not reply or not reply[0][1]:
                return
            await client.xack(stream, "baseline", *[sid for sid, _ in reply[0][1]])

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in range(PARTITIONS)))
    elapsed = time.perf_counter() - t0
    await client.aclose()
    return EVENTS / elapsed


async def offer(base_url: str, seconds: float) -> int:
    """POST batches of 25 events every 12.5 ms (2,000 events/s), paced on a fixed schedule."""
    sent = 0
    gen = synthetic.events(int(RATE * seconds) + 10, seed=7, start_ms=int(time.time() * 1000))
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        t0 = time.perf_counter()
        tick = 0
        pending: set[asyncio.Task[httpx.Response]] = set()
        while time.perf_counter() - t0 < seconds:
            now_ms = int(time.time() * 1000)
            batch = [{**event.to_doc(next(gen)), "ts": now_ms} for _ in range(BATCH)]
            t = asyncio.create_task(http.post("/v1/events", json={"events": batch}))
            pending.add(t)
            t.add_done_callback(pending.discard)
            sent += len(batch)
            tick += 1
            await asyncio.sleep(max(0.0, t0 + tick * BATCH / RATE - time.perf_counter()))
        for r in await asyncio.gather(*pending):
            assert r.status_code == 202, r.text
    return sent


async def freshness(s: ProcessorSettings) -> tuple[float, float, int]:
    port = free_port()
    env = {**os.environ, "P13N_REDIS_URL": s.redis_url, "P13N_PARTITIONS": str(PARTITIONS),
           "P13N_COLLECTOR_RATE_PER_S": "1000000", "P13N_COLLECTOR_BURST": "1000000"}  # fmt: skip
    code = (
        "import uvicorn; from origin.app import create_app; from origin.settings import Settings; "
        f"uvicorn.run(create_app(Settings.from_env()), host='127.0.0.1', port={port}, "
        "log_level='warning', access_log=False)"
    )
    origin = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(200):
                try:
                    if (await probe.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        metrics = Recording()
        done = asyncio.Event()
        task = asyncio.create_task(run_processor(s, done, metrics))
        await asyncio.sleep(1.0)  # leases taken
        # The shoppers' traffic comes from another process, as it would.
        load = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--offer", f"http://127.0.0.1:{port}", str(FRESH_S),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await load.communicate()
        assert load.returncode == 0, "load generator failed"
        sent = int(out.decode().split()[-1])
        await asyncio.sleep(1.0)
        done.set()
        await task
    finally:
        origin.terminate()
        origin.wait(timeout=10)
    xs = sorted(metrics.samples)
    return xs[len(xs) // 2], xs[int(len(xs) * 0.99)], sent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as server:
        s = ProcessorSettings(
            redis_url=server.url, partitions=PARTITIONS, archive_dir=str(Path(tmp) / "archive"),
            lists_interval_s=0, consumer="bench", read_block_ms=20,
        )  # fmt: skip
        load(server.url)
        print(f"loaded {EVENTS} events into {PARTITIONS} partitions")
        n = asyncio.run(throughput(s))
        print(f"processor: {n:,.0f} events/s")
        b = asyncio.run(baseline(server.url))
        print(f"baseline (XREADGROUP + XACK only): {b:,.0f} events/s")
        redis.Redis.from_url(server.url).flushall()
        p50, p99, sent = asyncio.run(freshness(s))
        print(f"freshness at {RATE} events/s offered ({sent} events): p50 {p50} ms, p99 {p99} ms")
        print(
            f"processor_events_per_s={n:.0f} baseline_events_per_s={b:.0f} ratio={n / b:.3f} "
            f"freshness_p50_ms={p50:.0f} freshness_p99_ms={p99:.0f}"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--offer"]:
        print(asyncio.run(offer(sys.argv[2], float(sys.argv[3]))))
    else:
        main()
