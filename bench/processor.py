"""Processor throughput against an XREADGROUP + XACK baseline, and event-to-feature freshness.

1. Loads a synthetic stream (Zipf items, sessions, funnels, exposures) into 8 partitions of a
   throwaway Redis, runs the processor until every entry is committed: events/s.
2. Baseline, same run, same entries: a second consumer group that only reads and acks.
3. Starts the origin (uvicorn, real HTTP) and, from separate load-generator processes (two,
   each on its own keep-alive connections), offers 2,000 events/s to ``POST /v1/events``
   (batches of 25, one every 12.5 ms in all, on a fixed schedule) while the processor runs;
   freshness = commit time of the batch applying an event minus the collector's receipt (the
   stream id's time). The offered rate actually reached is printed; the run fails if it is
   under 98% of the target.

The processor runs in this process as ``p13n segmenter run`` would (same GC settings, see
``segmenter.processor.tune_gc``).

Every feature is on (recent, cart, bought, affinity, popularity, co-visitation, experiments,
segments) and the archive is written. Last line::

    processor_events_per_s=<N> baseline_events_per_s=<B> ratio=<N/B> freshness_p50_ms=<a>
    freshness_p99_ms=<b>
"""

from __future__ import annotations

import asyncio
import json
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
import orjson  # noqa: E402
import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from ops import shop  # noqa: E402
from ops.local.process import die_with_parent  # noqa: E402
from ops.local.redis import RedisServer, free_port  # noqa: E402
from segmenter import event  # noqa: E402
from segmenter.aggregates import PartitionEffects  # noqa: E402
from segmenter.metrics import Metrics  # noqa: E402
from segmenter.processor import Processor, tune_gc  # noqa: E402
from segmenter.schema import GROUP, Keys, partition_of  # noqa: E402
from segmenter.settings import ProcessorSettings  # noqa: E402

PARTITIONS = 8
EVENTS = int(os.environ.get("BENCH_EVENTS", "150000"))
RATE = 2000
BATCH = 25
SENDERS = 2  # load-generator processes
CONNECTIONS = 4  # keep-alive connections per sender
FRESH_S = float(os.environ.get("BENCH_FRESH_S", "10"))
KEYS = Keys()


class Recording(Metrics):
    """Metrics that also keep every freshness sample."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[float] = []
        self.handled = 0  # entries decided (not redeliveries)

    def observe_batch(self, fx: PartitionEffects, apply_s: float, commit_ms: int) -> None:
        super().observe_batch(fx, apply_s, commit_ms)
        self.samples += [commit_ms - e.key[0] for e in fx.accepted]
        self.handled += len(fx.ack) - fx.counters["skip"]


def load(url: str) -> int:
    r = redis.Redis.from_url(url)
    pipe = r.pipeline(transaction=False)
    for p in range(PARTITIONS):
        pipe.xgroup_create(KEYS.stream(p), GROUP, id="0", mkstream=True)
        pipe.xgroup_create(KEYS.stream(p), "baseline", id="0")
    for n, ev in enumerate(shop.events(EVENTS, seed=42), 1):
        pipe.xadd(KEYS.stream(partition_of(ev.user, PARTITIONS)), {"e": event.encode(ev)})
        if n % 5000 == 0:
            pipe.execute()
    pipe.execute()
    r.close()
    return EVENTS


async def drained(r: aioredis.Redis, group: str) -> bool:
    for p in range(PARTITIONS):
        for g in await r.xinfo_groups(KEYS.stream(p)):
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
    probe = aioredis.Redis.from_url(s.redis_url)
    done = asyncio.Event()
    task = asyncio.create_task(run_processor(s, done, Metrics()))
    while not all([await probe.hget(KEYS.partition_meta(p), "owner") for p in range(PARTITIONS)]):
        await asyncio.sleep(0.005)
    t0 = time.perf_counter()
    while not await drained(probe, GROUP):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    done.set()
    await task
    await probe.aclose()
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


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                body: bytes) -> int:  # fmt: skip
    """One POST /v1/events on a keep-alive HTTP/1.1 connection; returns the status."""
    writer.write(
        b"POST /v1/events HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\n\r\n" + body
    )  # fmt: skip
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )  # fmt: skip
    await reader.readexactly(length)
    return status


async def offer(base_url: str, seconds: float, sender: int, senders: int) -> dict[str, float]:
    """This sender's share of the schedule: batch k (of BATCH events) is due at k * BATCH /
    RATE seconds and sent by sender k % senders, over CONNECTIONS keep-alive connections."""
    host, port = base_url.removeprefix("http://").split(":")
    gen = shop.events(int(RATE * seconds) + 10, seed=7 + sender,
                           start_ms=int(time.time() * 1000))  # fmt: skip
    ticks = [k for k in range(int(seconds * RATE / BATCH)) if k % senders == sender]
    queue: asyncio.Queue[int] = asyncio.Queue()
    sent, late, bad = [0], [0.0], [0]
    t0 = time.perf_counter() + 0.2

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        while (k := await queue.get()) >= 0:
            late[0] = max(late[0], time.perf_counter() - (t0 + k * BATCH / RATE))
            now_ms = int(time.time() * 1000)
            batch = [{**event.to_doc(next(gen)), "ts": now_ms} for _ in range(BATCH)]
            if await _post(reader, writer, host, orjson.dumps({"events": batch})) != 202:
                bad[0] += 1
            sent[0] += BATCH
        writer.close()

    conns = [asyncio.create_task(connection()) for _ in range(CONNECTIONS)]
    for k in ticks:
        await asyncio.sleep(max(0.0, t0 + k * BATCH / RATE - time.perf_counter()))
        queue.put_nowait(k)
    for _ in conns:
        queue.put_nowait(-1)
    await asyncio.gather(*conns)
    elapsed = time.perf_counter() - t0
    return {"sent": sent[0], "elapsed_s": elapsed, "max_late_ms": late[0] * 1000, "bad": bad[0]}


async def freshness(s: ProcessorSettings) -> tuple[float, float, int, float, float]:
    port = free_port()
    env = {**os.environ, "P13N_REDIS_URL": s.redis_url, "P13N_PARTITIONS": str(PARTITIONS),
           "P13N_COLLECTOR_RATE_PER_S": "1000000", "P13N_COLLECTOR_BURST": "1000000",
           "P13N_TRUSTED_LOCAL": "1"}  # a throwaway origin: random signing keys  # fmt: skip
    code = (
        "import uvicorn; from origin.app import create_app; from origin.settings import Settings; "
        f"uvicorn.run(create_app(Settings.from_env()), host='127.0.0.1', port={port}, "
        "log_level='warning', access_log=False)"
    )
    origin = subprocess.Popen([sys.executable, "-c", code], env=env, preexec_fn=die_with_parent())  # noqa: PLW1509
    done = asyncio.Event()
    task: asyncio.Task[None] | None = None
    loads: list[asyncio.subprocess.Process] = []
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(200):
                try:
                    if (await probe.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        metrics = Recording()
        task = asyncio.create_task(run_processor(s, done, metrics))
        await asyncio.sleep(1.0)  # leases taken
        # The shoppers' traffic comes from other processes, as it would.
        for n in range(SENDERS):
            args = ("--offer", f"http://127.0.0.1:{port}", str(FRESH_S), str(n), str(SENDERS))
            loads.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, __file__, *args, stdout=asyncio.subprocess.PIPE
                )
            )
        reports = []
        for load in loads:
            out, _ = await load.communicate()
            assert load.returncode == 0, "load generator failed"
            reports.append(json.loads(out.decode().splitlines()[-1]))
        assert not any(r["bad"] for r in reports), f"collector refused batches: {reports}"
        sent = sum(int(r["sent"]) for r in reports)
        offered = sent / max(r["elapsed_s"] for r in reports)
        late_ms = max(r["max_late_ms"] for r in reports)
        await asyncio.sleep(1.0)
    finally:
        # Whatever failed, stop everything this phase started (a failed assertion must not
        # leave the processor running and the benchmark hanging).
        for load in loads:
            if load.returncode is None:
                load.kill()
                await load.wait()
        done.set()
        if task is not None:
            await asyncio.wait_for(task, timeout=60)
        origin.terminate()
        origin.wait(timeout=10)
    xs = sorted(metrics.samples)
    assert metrics.handled == sent, f"{metrics.handled} of {sent} offered events were committed"
    return xs[len(xs) // 2], xs[int(len(xs) * 0.99)], sent, offered, late_ms


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as server:
        s = ProcessorSettings(
            redis_url=server.url, partitions=PARTITIONS, archive_dir=str(Path(tmp) / "archive"),
            lists_interval_s=0, consumer="bench", read_block_ms=20,
        )  # fmt: skip
        load(server.url)
        print(f"loaded {EVENTS} events into {PARTITIONS} partitions")
        tune_gc()  # as ``p13n segmenter run`` does
        n = asyncio.run(throughput(s))
        print(f"processor: {n:,.0f} events/s")
        b = asyncio.run(baseline(server.url))
        print(f"baseline (XREADGROUP + XACK only): {b:,.0f} events/s")
        redis.Redis.from_url(server.url).flushall()
        p50, p99, sent, offered, late_ms = asyncio.run(freshness(s))
        print(
            f"freshness at {RATE} events/s target, {offered:,.0f} events/s offered ({sent} "
            f"events, sends at most {late_ms:.0f} ms behind schedule): p50 {p50} ms, "
            f"p99 {p99} ms"
        )
        assert offered >= 0.98 * RATE, f"offered only {offered:.0f} events/s"
        print(
            f"processor_events_per_s={n:.0f} baseline_events_per_s={b:.0f} ratio={n / b:.3f} "
            f"freshness_p50_ms={p50:.0f} freshness_p99_ms={p99:.0f}"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--offer"]:
        url, secs, me, of = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(asyncio.run(offer(url, secs, me, of))))
    else:
        main()
