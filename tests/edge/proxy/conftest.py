"""A real origin process (``p13n origin`` under uvicorn) on its own Redis, seeded with
catalog, segment lists and the popular list in the formats of ``segmenter/schema.py``, and
the self-hosted edge in-process on a fake clock in front of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from cache_keys import KeyRing, SigningKey, hash_segment, sign_segment
from cache_keys.wire import ListItem
from edge.proxy.app import EdgeRuntime, create_app
from edge.proxy.settings import ProxySettings
from edge.settings import EdgeSettings
from ops.local.redis import RedisServer, free_port
from tests.asgi import app_client
from tests.origin import data

SIGNING = "k1:edge-proxy-test-secret-0123456789"
RING = KeyRing(SigningKey("k1", b"edge-proxy-test-secret-0123456789"))
SEGMENTS = [f"returning|cat{i}|mid" for i in range(3)]
HSEGS = [hash_segment(s, data.SEGMENT_KEY) for s in SEGMENTS]
CATS = ("dairy", "bakery", "produce", "snacks")


def list_items(seg: int, n: int = 40) -> tuple[ListItem, ...]:
    return tuple(
        ListItem(
            item=f"S{seg}-{i:03d}",
            score=round(1 - i / 50, 3),
            category=CATS[i % 4],
            price=float(1 + i % 7),
        )
        for i in range(n)
    )


def seed(r: redis.Redis) -> None:
    catalog = {}
    for seg, h in enumerate(HSEGS):
        items = list_items(seg)
        data.put_list(r, h, "control", items, f'"list-{seg}-1"')
        catalog.update({i.item: (i.category, i.price, 100, False) for i in items})
    data.put_catalog(r, catalog)
    data.put_popular(r, list_items(9, 20))


@dataclass
class OriginProcess:
    """The real origin: kill, pause (SIGSTOP: slower than any budget) and restart it."""

    redis: RedisServer
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OriginProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "origin", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("origin did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def requests_to(self, route: str) -> int:
        """How many requests the origin has served for a route template (its /metrics)."""
        text = httpx.get(self.url + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("p13n_origin_request_seconds_count{") and (
                f'route="{route}"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)


@pytest.fixture
def origin(tmp_path) -> Iterator[OriginProcess]:
    with seeded_origin(tmp_path) as proc:
        yield proc


@contextmanager
def seeded_origin(tmp_path: Path) -> Iterator[OriginProcess]:
    """The origin process on a seeded Redis of its own; both stopped by PID on exit."""
    server = RedisServer(data_dir=tmp_path).start()
    r = redis.Redis.from_url(server.url)
    seed(r)
    r.close()
    env = dict(os.environ)
    env.update(
        {
            "P13N_REDIS_URL": server.url,
            "P13N_SEGMENT_KEY": data.SEGMENT_KEY.decode(),
            "P13N_SEGMENT_SIGNING": SIGNING,
            "P13N_CONTEXT_SIGNING": SIGNING,
            "P13N_ADMIN_TOKENS": ",".join(f"{role}:{tok}" for tok, role in data.TOKENS.items()),
            "P13N_TRUSTED_LOCAL": "1",
            "P13N_REFRESH_MS": "100",
            "P13N_EDGE_CONFIG_MAX_AGE_S": "5",
        }
    )
    proc = OriginProcess(server, free_port(), env).start()
    try:
        yield proc
    finally:
        proc.kill()
        server.close()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def proxy_settings(origin: OriginProcess, **kw) -> ProxySettings:
    core = EdgeSettings(
        origin_url=origin.url,
        segment_keys=RING,
        context_keys=RING,
        collector_url=origin.url,
        origin_timeout_ms=500,
        segment_refresh_ms=0,
    )
    args = {
        "core": core,
        "origin_url": origin.url,
        "redis_url": origin.redis.url,
        "edge_id": "edge-test",
        "heartbeat_s": 0.2,
        "breaker_failures": 3,
        "breaker_reset_s": 1.0,
        "collapse_wait_ms": 3000,
        "proxy_timeout_ms": 1000,
    }
    args.update(kw)
    return ProxySettings(**args)


@pytest.fixture
async def edge(origin: OriginProcess, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    settings = proxy_settings(origin)
    runtime = EdgeRuntime.open(settings, clock=clock)
    app = create_app(settings, runtime)
    async with app_client(app, base_url="http://shop.test") as client:
        client.runtime = runtime  # type: ignore[attr-defined]
        yield client


def shopper_cookie(shopper: str, seg: int, now_s: float) -> str:
    token = sign_segment(HSEGS[seg], int(now_s) + 86400, RING)
    return f"p13n_sid={shopper}; p13n_seg={token}"
