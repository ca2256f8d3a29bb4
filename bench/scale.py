"""How cost grows with shoppers: 10k, 100k and 1M synthetic shoppers, each in a fresh Redis.

Per size: a fresh redis-server (no persistence) gets bench/origin.py's world (5,000-sku
catalog, co-visitation, 200 segment lists) and then ``size`` shoppers' features: 2,000
distinct shoppers made by bench/origin.py's generator, encoded once, and written under every
shopper's own id by a pipelined writer (one connection, replies off). Measured:

- Redis memory per shopper: ``used_memory`` after the shoppers minus before, over ``size``;
- origin ``/v1/recommendations`` p50/p99 at a fixed offered rate (``--rate``, open loop from
  each request's intended send time, users drawn uniformly from every shopper), one uvicorn
  worker, after a warm-up at the same rate;
- processor events/s: ``--events`` events (views, carts, purchases, exposures) of shoppers
  drawn uniformly from the loaded ones, in 8 partitions, applied by an in-process processor
  from the first lease to the last acknowledgement (each shopper is read from Redis first);
- segment-list build time: ``segmenter.lists.build_lists`` over the loaded store, median of 3.

One line per size, and a last line of growth ratios (largest size vs smallest).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import os
import random
import socket
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

# bench/origin.py is named like the ``origin`` package: drop this folder from the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def _by_path(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, _HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bo = _by_path("origin")  # the world loader and the open-loop generator

import httpx  # noqa: E402
import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from ops import shop  # noqa: E402
from ops.local.redis import RedisServer, free_port  # noqa: E402
from segmenter import event  # noqa: E402
from segmenter.lists import build_lists  # noqa: E402
from segmenter.metrics import Metrics  # noqa: E402
from segmenter.processor import Processor  # noqa: E402
from segmenter.schema import GROUP, Keys, partition_of, shopper_tag  # noqa: E402
from segmenter.segments import load_rules  # noqa: E402
from segmenter.settings import ProcessorSettings  # noqa: E402

PARTITIONS = 8
KEYS = Keys()
# Distinct synthetic shoppers; the rest repeat their features under their own ids (a
# shopper's keys are its own whatever the values: memory and reads are per shopper).
TEMPLATES = 2000
PLACEHOLDER = "PLACEHOLDERxSHOPPERxID"  # where a template's id goes (an anonymous id: 22 chars)


def _used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def _templates(
    r: redis.Redis, by_cat: dict[str, list[str]], segments: list[str], rng: random.Random
) -> list[list[bytes]]:
    """``TEMPLATES`` shoppers' commands as RESP bytes, split where the shopper id goes."""
    out = []
    conn = r.connection_pool.get_connection()
    try:
        for _ in range(TEMPLATES):
            pipe = r.pipeline(transaction=False)
            bo.queue_shopper(pipe, KEYS, PLACEHOLDER, by_cat, segments, rng)
            packed = b"".join(conn.pack_commands([args for args, _ in pipe.command_stack]))
            out.append(packed.split(PLACEHOLDER.encode()))
    finally:
        r.connection_pool.release(conn)
    return out


def write_shoppers(url: str, templates: list[list[bytes]], ids: list[str]) -> None:
    """Every shopper's commands (a template with its id) down one connection, replies off
    (CLIENT REPLY OFF: nothing to read back), then one PING to know Redis has them all."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n")
        buf: list[bytes] = []
        for i, sid in enumerate(ids):
            buf.append(shopper_tag(sid).encode().join(templates[i % len(templates)]))
            if len(buf) == 1000:
                sock.sendall(b"".join(buf))
                buf.clear()
        buf.append(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n*1\r\n$4\r\nPING\r\n")
        sock.sendall(b"".join(buf))
        reply = b""
        while not reply.endswith(b"+PONG\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit(f"redis closed the loading connection: {reply!r}")
            reply += chunk
    if reply != b"+OK\r\n+PONG\r\n":
        raise SystemExit(f"loading failed: {reply[:200]!r}")


def load(url: str, n: int) -> tuple[list[str], float, float]:
    """The world and ``n`` shoppers: (ids, bytes per shopper, load seconds)."""
    r = redis.Redis.from_url(url)
    rng = random.Random(20261206)
    by_cat, segments = bo._shared(r, KEYS, rng)
    templates = _templates(r, by_cat, segments, rng)
    before = _used(r)
    t0 = time.perf_counter()
    ids = [bo.new_id(rng) for _ in range(n)]
    write_shoppers(url, templates, ids)
    took = time.perf_counter() - t0
    per = (_used(r) - before) / n
    if r.exists(KEYS.shopper(ids[-1]), KEYS.recent(ids[0])) != 2:
        raise SystemExit("the shoppers did not all arrive")
    r.close()
    return ids, per, took


def origin_latency(url: str, ids: list[str], rate: float, seconds: float) -> tuple[float, float]:
    """p50 and p99 (ms) of /v1/recommendations at ``rate`` offered."""
    port = free_port()
    proc = bo.start_origin(url, port, 1)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/v1/recommendations", params={"user": ids[0]})
        assert r.status_code == 200 and r.json()["items"], r.text
        prefix = "/v1/recommendations?user="
        asyncio.run(bo.open_loop(port, prefix, ids, rate, min(seconds, 5), 32))  # warm-up
        lat, errors = asyncio.run(bo.open_loop(port, prefix, ids, rate, seconds, 32))
    finally:
        bo.stop(proc)
    if errors:
        raise SystemExit(f"{errors} non-200 answers from the origin")
    return lat[len(lat) // 2] * 1000, lat[int(0.99 * (len(lat) - 1))] * 1000


def load_events(url: str, ids: list[str], count: int) -> None:
    """``count`` events of shoppers drawn uniformly from ``ids``, into the partition streams."""
    r = redis.Redis.from_url(url)
    rng = random.Random(5)
    pipe = r.pipeline(transaction=False)
    for p in range(PARTITIONS):
        pipe.xgroup_create(KEYS.stream(p), GROUP, id="0", mkstream=True)
    users: dict[str, str] = {}
    for n, ev in enumerate(shop.events(count, seed=42, shop=shop.Shop(shoppers=len(ids))), 1):
        user = users.setdefault(ev.user, ids[rng.randrange(len(ids))])
        mine = dataclasses.replace(ev, user=user, event_id=f"{ev.event_id}-{n}")
        pipe.xadd(KEYS.stream(partition_of(user, PARTITIONS)), {"e": event.encode(mine)})
        if n % 5000 == 0:
            pipe.execute()
    pipe.execute()
    r.close()


async def _drained(r: aioredis.Redis) -> bool:
    for p in range(PARTITIONS):
        for g in await r.xinfo_groups(KEYS.stream(p)):
            if g["name"].decode() == GROUP and (g["lag"] or g["pending"]):
                return False
    return True


async def _process(s: ProcessorSettings, count: int) -> float:
    client = aioredis.Redis.from_url(s.redis_url, max_connections=64)
    probe = aioredis.Redis.from_url(s.redis_url)
    stop = asyncio.Event()
    task = asyncio.create_task(Processor(s, client, metrics=Metrics()).run(stop))
    try:
        while not all([await probe.hget(KEYS.partition_meta(p), "owner")
                       for p in range(PARTITIONS)]):  # fmt: skip
            await asyncio.sleep(0.005)
        t0 = time.perf_counter()
        while not await _drained(probe):
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
        return count / (time.perf_counter() - t0)
    finally:
        stop.set()
        await task
        await client.aclose()
        await probe.aclose()


def settings(url: str) -> ProcessorSettings:
    """The processor's settings for this bench (no archive, lists built only when asked)."""
    return ProcessorSettings(redis_url=url, partitions=PARTITIONS, lists_interval_s=0,
                             consumer="scale", segment_key=bo.SEG_KEY)  # fmt: skip


def lists_build_ms(url: str, s: ProcessorSettings) -> float:
    """Median of 3 full segment-list builds, in ms."""
    rules = load_rules()

    async def once() -> float:
        r = aioredis.Redis.from_url(url)
        t0 = time.perf_counter()
        await build_lists(r, KEYS, rules, s, int(time.time() * 1000))
        took = (time.perf_counter() - t0) * 1000
        await r.aclose()
        return took

    return statistics.median(asyncio.run(once()) for _ in range(3))


def one_size(n: int, args: argparse.Namespace) -> dict[str, float]:
    """Every figure for ``n`` shoppers, in a fresh Redis."""
    with RedisServer() as server:
        ids, per_shopper, took = load(server.url, n)
        print(f"  {n} shoppers loaded in {took:.1f} s", flush=True)
        p50, p99 = origin_latency(server.url, ids, args.rate, args.seconds)
        s = settings(server.url)
        load_events(server.url, ids, args.events)
        eps = asyncio.run(_process(s, args.events))
        build = lists_build_ms(server.url, s)
    return {"bytes_per_shopper": per_shopper, "origin_p50_ms": p50, "origin_p99_ms": p99,
            "processor_events_per_s": eps, "lists_build_ms": build}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes",
        default="10000,100000,1000000",
        help="shopper counts, comma-separated (default 10000,100000,1000000)",
    )
    ap.add_argument("--rate", type=float, default=50.0, help="origin offered req/s (50)")
    ap.add_argument("--seconds", type=float, default=15.0, help="origin measure time (15)")
    ap.add_argument("--events", type=int, default=30_000, help="processor events (30000)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    results = {}
    for n in sizes:
        r = results[n] = one_size(n, args)
        cells = " ".join(f"{k}={v:.1f}" for k, v in r.items())
        print(f"shoppers={n} {cells} load={os.getloadavg()[0]:.2f}", flush=True)
    lo, hi = results[min(sizes)], results[max(sizes)]
    print(
        f"growth_shoppers={max(sizes) / min(sizes):g} "
        + " ".join(f"{k}_ratio={hi[k] / lo[k]:.2f}" for k in lo),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
