"""The self-hosted edge's cache-hit path vs a hello-world route, and request collapsing.

Starts a throwaway Redis with 21 segments' lists (200 candidates each), the origin
(``p13n origin``) and one edge (``p13n edge``, which also serves ``/__bench/hello``: a
hello-world Starlette route in the same process and server settings). 1,000 shoppers with
valid signed segment cookies spread over 20 segments; every request runs the decision core
(verify the cookie, assign, build the key, freshness, rerank of the cached list). The rail
path is served by ``EdgeApp`` before Starlette's router, as in production; the hello route
is an ordinary Starlette route of the same app (routing and middleware included).

1. wrk (Debian's package, installed if missing) with a Lua script drawing a shopper per
   request: the hit path with no rerank context, the hit path with a signed context cookie
   (cart, recent categories, durable purchases: the rerank does real work), and hello world;
   rounds alternate the three and the median of each counts.
2. 50 concurrent cold requests for one key (the 21st segment, never requested before):
   the origin's own request counter says how many list fetches reached it.

Last line: edge_hit_rps=<N> edge_rerank_rps=<R> hello_rps=<B> ratio=<N/B>
rerank_ratio=<R/N> collapse_origin_requests=<n>
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# bench/origin.py would shadow the ``origin`` package: drop this folder from the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("_load", _HERE / "_load.py")
assert _spec is not None and _spec.loader is not None
_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_load)

import httpx  # noqa: E402
import msgpack  # noqa: E402
import orjson  # noqa: E402
import redis  # noqa: E402

from cache_keys import KeyRing, SigningKey, hash_segment, new_shopper_id, sign_segment  # noqa: E402
from cache_keys.wire import (  # noqa: E402
    ContextCookie,
    ListItem,
    SegmentList,
    encode_context,
    segment_list_to_json,
)
from ops.local.process import die_with_parent  # noqa: E402
from ops.local.redis import RedisServer, free_port  # noqa: E402
from segmenter.schema import Keys  # noqa: E402

SEGMENT_KEY = "bench-segment-hash-key-0123456789"
SIGN = "k1:bench-edge-signing-secret-0123456789"
RING = KeyRing(SigningKey("k1", b"bench-edge-signing-secret-0123456789"))
CATS = [f"cat{i}" for i in range(12)]
KEYS = Keys()


def seed(url: str, segments: int, items: int) -> list[str]:
    r = redis.Redis.from_url(url)
    hsegs, catalog = [], {}
    p = r.pipeline()
    for s in range(segments):
        h = hash_segment(f"bench|seg{s}", SEGMENT_KEY.encode())
        hsegs.append(h)
        lst = tuple(
            ListItem(
                item=f"I{s}-{i:04d}",
                score=round(1 - i / (items + 1), 4),
                category=CATS[(s + i) % len(CATS)],
                price=float(1 + i % 30),
                durable=i % 11 == 0,
            )
            for i in range(items)
        )
        etag = f'"b-{s}"'
        sl = SegmentList(h, "control", etag, int(time.time() * 1000), lst)
        p.set(KEYS.segment_list(h, "control"), msgpack.packb(segment_list_to_json(sl)))
        p.hset(
            KEYS.list_registry, h, msgpack.packb({"segment": f"seg{s}", "lists": {"control": etag}})
        )
        for it in lst:
            catalog[it.item] = orjson.dumps(
                {
                    "category": it.category,
                    "price": it.price,
                    "stock": 50,
                    "durable": it.durable,
                    "updated_ms": 0,
                }
            )
    p.hset(KEYS.catalog, mapping=catalog)
    p.execute()
    r.close()
    return hsegs


def start(args: list[str], env: dict[str, str], health: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        cwd=_HERE.parent,
        start_new_session=True,
        preexec_fn=die_with_parent(),  # noqa: PLW1509 - a killed bench leaves no server
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    _load.stop(proc)
    raise SystemExit(f"{args[0]} did not start")


def cookies(hsegs: list[str], shoppers: int, rerank: bool, rng: random.Random) -> list[str]:
    exp = int(time.time()) + 86400
    out = []
    for n in range(shoppers):
        h = hsegs[n % len(hsegs)]
        c = f"p13n_sid={new_shopper_id()}; p13n_seg={sign_segment(h, exp, RING)}"
        if rerank:
            s = n % len(hsegs)
            ctx = ContextCookie(
                categories=tuple(rng.sample(CATS, 3)),
                cart=tuple(f"I{s}-{rng.randrange(200):04d}" for _ in range(3)),
                durable_purchases=(f"I{s}-0000", f"I{s}-0011"),
                issued_at_s=int(time.time()),
            )
            c += f"; p13n_ctx={encode_context(ctx, RING)}"
        out.append(c)
    return out


def lua(path: str, cookie_list: list[str]) -> str:
    quoted = ",\n".join(f'  "{c}"' for c in cookie_list)
    return (
        f"local cookies = {{\n{quoted}\n}}\nmath.randomseed(7)\n"
        "request = function()\n"
        "  local c = cookies[math.random(#cookies)]\n"
        f'  return wrk.format("GET", "{path}", {{["Cookie"] = c}})\n'
        "end\n"
    )


def origin_list_requests(origin: str) -> int:
    total = 0.0
    for line in httpx.get(origin + "/metrics", timeout=5).text.splitlines():
        if line.startswith("p13n_origin_request_seconds_count{") and (
            'route="/v1/segments/{hseg}/list"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


async def collapse(edge: str, cold_cookies: list[str]) -> list[int]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=60), timeout=10) as c:
        answers = await asyncio.gather(
            *(
                c.get(edge + "/p13n/v1/rail/home?k=12", headers={"cookie": ck})
                for ck in cold_cookies
            )
        )
    return [a.status_code for a in answers]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=8, help="seconds per wrk run (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    args = ap.parse_args()
    wrk = _load.ensure_wrk()
    rng = random.Random(11)
    tmp = Path(tempfile.mkdtemp(prefix="p13n-bench-edge-"))
    server = RedisServer(data_dir=tmp).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        hsegs = seed(server.url, 21, 200)
        o_port, e_port, a_port = free_port(), free_port(), free_port()
        origin, edge = f"http://127.0.0.1:{o_port}", f"http://127.0.0.1:{e_port}"
        env = {
            **os.environ,
            "P13N_REDIS_URL": server.url,
            "P13N_SEGMENT_KEY": SEGMENT_KEY,
            "P13N_SEGMENT_SIGNING": SIGN,
            "P13N_CONTEXT_SIGNING": SIGN,
            "P13N_TRUSTED_LOCAL": "1",
            "SEGMENT_KEYS": SIGN,
            "CONTEXT_KEYS": SIGN,
            "P13N_EDGE_BENCH_HELLO": "1",
            "P13N_EDGE_HEARTBEAT_S": "0",
        }
        procs.append(start(["origin", "--port", str(o_port)], env, origin + "/readyz"))
        procs.append(
            start(
                [
                    "edge",
                    "--origin",
                    origin,
                    "--port",
                    str(e_port),
                    "--admin-port",
                    str(a_port),
                    "--redis-url",
                    server.url,
                    "--workers",
                    "1",  # one process, as the hello baseline and the collapse count assume
                ],
                env,
                f"http://127.0.0.1:{a_port}/healthz",
            )
        )
        warm = hsegs[:20]
        plain = cookies(warm, 1000, rerank=False, rng=rng)
        ranked = cookies(warm, 1000, rerank=True, rng=rng)
        for c in plain[:20]:  # one request per segment fills the cache
            assert (
                httpx.get(edge + "/p13n/v1/rail/home?k=12", headers={"cookie": c}).status_code
                == 200
            )
        scripts = {}
        for name, path, cl in (
            ("hit", "/p13n/v1/rail/home?k=12", plain),
            ("rerank", "/p13n/v1/rail/home?k=12", ranked),
            ("hello", "/__bench/hello", plain),
        ):
            scripts[name] = tmp / f"{name}.lua"
            scripts[name].write_text(lua(path, cl))
        runs: dict[str, list[float]] = {"hit": [], "rerank": [], "hello": []}
        for r in range(args.rounds):
            order = ["hit", "rerank", "hello"]
            order = order[r % 3 :] + order[: r % 3]
            for name in order:
                runs[name].append(
                    _load.wrk_rps(wrk, edge, scripts[name], args.seconds, args.connections)
                )
            print(
                f"round {r + 1}/{args.rounds}: "
                + " ".join(f"{k}={v[-1]:.0f}" for k, v in runs.items()),
                flush=True,
            )
        before = origin_list_requests(origin)
        cold = cookies([hsegs[20]], 50, rerank=False, rng=rng)
        statuses = asyncio.run(collapse(edge, cold))
        fetched = origin_list_requests(origin) - before
        print(
            f"50 concurrent cold requests: statuses {sorted(set(statuses))}, "
            f"origin list fetches {fetched}",
            flush=True,
        )
    finally:
        for p in reversed(procs):
            _load.stop(p)
        server.close()
    hit, rer, hello = (statistics.median(runs[k]) for k in ("hit", "rerank", "hello"))
    print(
        f"edge_hit_rps={hit:.0f} edge_rerank_rps={rer:.0f} hello_rps={hello:.0f} "
        f"ratio={hit / hello:.2f} rerank_ratio={rer / hit:.2f} "
        f"collapse_origin_requests={fetched}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
