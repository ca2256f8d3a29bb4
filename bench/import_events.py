"""Bulk history import vs the collector path, in the same run.

Starts a throwaway redis-server and writes a JSON Lines history of N events (10,000 shoppers,
anonymous and customer ids, 3,000 skus). Then, interleaved over rounds on fresh streams:

- baseline: the collector path as the issue measured it, minus its rate limit: the origin
  under uvicorn (``p13n origin``, trusted local mode, rate limit lifted) taking the same
  events as ``POST /v1/events`` batches of 500 over 4 keep-alive connections;
- import: ``p13n import events`` (in process, one writer; ``tune_gc`` as the CLI does) of
  the whole file into the partition streams.

Both write the same events to the same streams (the import checks, dead-letters and records
progress as in production). The best round of each counts (a shared, noisy machine).

Last line: import_events_per_s=<N> baseline_events_per_s=<B> ratio=<N/B>
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("_load", _HERE / "_load.py")
assert _spec is not None and _spec.loader is not None
_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_load)
stop = _load.stop

import httpx  # noqa: E402
import orjson  # noqa: E402
import redis  # noqa: E402

from cache_keys import new_shopper_id  # noqa: E402
from ops.imports.events import ImportOptions, import_events  # noqa: E402
from ops.local.redis import RedisServer, free_port  # noqa: E402
from segmenter.processor import tune_gc  # noqa: E402
from segmenter.schema import DEFAULT_PARTITIONS, Keys  # noqa: E402

T0 = 1_700_000_000_000
BATCH = 500
CONNS = 4


def history(path: Path, n: int) -> list[bytes]:
    """Write ``n`` events to ``path``; their lines."""
    rng = random.Random(18)
    users = [new_shopper_id() for _ in range(5000)] + [f"cust_{i}" for i in range(5000)]
    kinds = ("view", "view", "view", "add_to_cart", "purchase")
    lines = [
        orjson.dumps(
            {
                "v": 1,
                "event_id": f"h{i}",
                "type": rng.choice(kinds),
                "user": rng.choice(users),
                "item": f"sku-{rng.randrange(3000)}",
                "category": f"c{rng.randrange(40)}",
                "price": rng.randrange(100, 9000) / 100,
                "ts": T0 + i * 500,
                "session": f"s{rng.randrange(50_000)}",
            }
        )
        for i in range(n)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def start_origin(redis_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "P13N_REDIS_URL": redis_url, "P13N_TRUSTED_LOCAL": "1",
           "P13N_COLLECTOR_RATE_PER_S": "1000000000", "P13N_COLLECTOR_BURST": "1000000000",
           "P13N_MAX_BODY_BYTES": str(8 * 1024 * 1024)}  # fmt: skip
    return _load.start_origin(env, port, _HERE.parent)


async def collector_rate(base: str, lines: list[bytes]) -> float:
    """Events per second through ``POST /v1/events`` (batches of 500, 4 connections)."""
    bodies = [b'{"events": [' + b",".join(lines[i : i + BATCH]) + b"]}"
              for i in range(0, len(lines), BATCH)]  # fmt: skip
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            for _ in range(20):  # a 503 asks for the whole batch again (the collector's contract)
                r = await client.post("/v1/events", content=body,
                                      headers={"content-type": "application/json"})  # fmt: skip
                if r.status_code != 503:
                    break
                await asyncio.sleep(0.05)
            if r.status_code != 202 or r.json()["accepted"] != len(orjson.loads(body)["events"]):
                raise SystemExit(f"collector answered {r.status_code}: {r.text[:200]}")

    limits = httpx.Limits(max_connections=CONNS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONNS)))
        return len(lines) / (time.perf_counter() - started)


def import_rate(r: redis.Redis, path: Path) -> float:
    report = import_events(r, [path], ImportOptions(keys=Keys(), partitions=DEFAULT_PARTITIONS))
    if report.imported != report.lines:
        raise SystemExit(f"import did not take every line: {report.to_json()}")
    return report.lines / report.seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=300_000, help="events in the file")
    ap.add_argument("--baseline-events", type=int, default=50_000,
                    help="events sent through the collector per round")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tune_gc()
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as server:
        path = Path(tmp) / "history.jsonl"
        lines = history(path, args.events)
        r = redis.Redis.from_url(server.url)
        port = free_port()
        origin = start_origin(server.url, port)
        imports: list[float] = []
        baselines: list[float] = []
        try:
            for n in range(args.rounds):
                r.flushall()
                baselines.append(asyncio.run(
                    collector_rate(f"http://127.0.0.1:{port}", lines[: args.baseline_events])
                ))  # fmt: skip
                r.flushall()
                imports.append(import_rate(r, path))
                print(f"round {n + 1}: collector {baselines[-1]:,.0f} events/s, "
                      f"import {imports[-1]:,.0f} events/s", flush=True)  # fmt: skip
        finally:
            stop(origin)
            r.close()
    best, base = max(imports), max(baselines)
    print(
        f"import_events_per_s={best:.0f} baseline_events_per_s={base:.0f} ratio={best / base:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
