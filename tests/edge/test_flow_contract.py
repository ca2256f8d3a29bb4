"""One contract for the rail flow, run by both edges' adapters (the cachetools idea: one
test class, every implementation).

``worker``: the Cloudflare Worker in real Pyodide (``pyodide/harness.mjs``: JS fetch to a
real process, the harness's Cache API stand-in, ``ctx.waitUntil``). ``proxy``: the
self-hosted edge in-process (httpx to a real process, the byte store, its task set) on a
fake clock. Both in front of the stand-in origin (a real uvicorn process), the one place
origin faults can be injected on demand (503, hangs past the budget, a body that is not
JSON). Cache faults are injected into the Cache API stand-in and the byte store; a bug in
the decision core by replacing a core function the flow calls with one that raises.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from edge.proxy.app import EdgeRuntime, create_app
from edge.proxy.settings import ProxySettings
from tests.edge.rail_requests import (
    SHOP,
    SHOPPER,
    Reply,
    config_doc,
    experiment,
    shopper_cookie,
    valid_token,
    worker_get,
)
from tests.support.asgi import app_client
from tests.support.clock import FakeClock
from tests.support.edge import KEYRING
from tests.support.proxy import core_settings
from tests.support.worker import StandinOrigin, WorkerHarness

pytestmark = [pytest.mark.anyio, pytest.mark.pyodide]
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BUDGET_MS = 1500  # the origin budget of both edges: far above a loaded machine's latency
BUG = f"a bug in the core, quoting {SHOPPER}"  # an exception message must never be logged


class Edge(Protocol):
    """What the contract drives; one implementation per edge."""

    async def get(self, path: str = "/p13n/v1/rail/home", **headers: str) -> Reply: ...
    async def drain(self) -> None: ...
    async def advance(self, ms: int) -> None: ...
    async def break_cache(self, *, read: bool = False, write: bool = False) -> None: ...
    async def break_core(self, name: str) -> None: ...
    def logged(self) -> str: ...


class WorkerEdge:
    def __init__(self, harness: WorkerHarness, origin: StandinOrigin) -> None:
        self.w = harness
        harness.new_isolate(origin.url, timeout_ms=BUDGET_MS)
        assert harness.log_path is not None
        self.log_start = harness.log_path.stat().st_size

    async def get(self, path: str = "/p13n/v1/rail/home", **headers: str) -> Reply:
        return worker_get(self.w, path, **headers)

    async def drain(self) -> None:
        assert self.w.call("drain")["errors"] == []

    async def advance(self, ms: int) -> None:
        self.w.call("advance", ms=ms)

    async def break_cache(self, *, read: bool = False, write: bool = False) -> None:
        self.w.call("cache_faults", match=read, put=write)

    async def break_core(self, name: str) -> None:
        code = f"import edge.flow\ndef _bug(*a, **k):\n    raise RuntimeError({BUG!r})\n"
        self.w.call("run_python", code=code + f"edge.flow.{name} = _bug\nTrue")

    def logged(self) -> str:
        assert self.w.log_path is not None
        with Path(self.w.log_path).open() as f:
            f.seek(self.log_start)
            return f.read()


class ProxyEdge:
    def __init__(self, client: httpx.AsyncClient, runtime: EdgeRuntime, clock: FakeClock) -> None:
        self.client, self.runtime, self.clock = client, runtime, clock
        self.monkeypatch = pytest.MonkeyPatch()
        self.caplog: pytest.LogCaptureFixture | None = None

    async def get(self, path: str = "/p13n/v1/rail/home", **headers: str) -> Reply:
        hs = {k.replace("_", "-"): v for k, v in headers.items()}
        r = await self.client.get(path, headers=hs)
        return Reply(r.status_code, list(r.headers.multi_items()), r.text, 0)

    async def drain(self) -> None:
        assert self.runtime.rails is not None
        await self.runtime.rails.drain()

    async def advance(self, ms: int) -> None:
        self.clock.advance(ms / 1000)

    async def break_cache(self, *, read: bool = False, write: bool = False) -> None:
        def fault(*args: object) -> None:
            raise MemoryError("injected store fault")

        store = self.runtime.store
        self.monkeypatch.undo()
        if read:
            self.monkeypatch.setattr(store, "lookup", fault)
        if write:
            self.monkeypatch.setattr(store, "put", fault)

    async def break_core(self, name: str) -> None:
        def bug(*args: object, **kwargs: object) -> None:
            raise RuntimeError(BUG)

        self.monkeypatch.setattr(f"edge.flow.{name}", bug)

    def logged(self) -> str:
        assert self.caplog is not None
        return self.caplog.text


@pytest.fixture(params=["worker", "proxy"])
async def edge(
    request: pytest.FixtureRequest, origin: StandinOrigin, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Edge]:
    """An edge with an empty cache in front of the reset stand-in origin (config first)."""
    origin.control("config", config_doc(experiments=[experiment()]))
    if request.param == "worker":
        yield WorkerEdge(request.getfixturevalue("pyodide_worker"), origin)
        return
    core = core_settings(
        origin.url, KEYRING, origin_timeout_ms=BUDGET_MS, segment_refresh_ms=BUDGET_MS
    )
    settings = ProxySettings(core=core, origin_url=origin.url, heartbeat_s=0)
    clock = FakeClock(time.time())
    runtime = EdgeRuntime.open(settings, clock=clock)
    async with app_client(create_app(settings, runtime), base_url=SHOP) as client:
        proxy = ProxyEdge(client, runtime, clock)
        proxy.caplog = caplog
        try:
            yield proxy
        finally:
            await proxy.drain()
            proxy.monkeypatch.undo()


def cookie() -> str:
    return shopper_cookie(token=valid_token())


def fwd_status(reply: Reply) -> str | None:
    m = re.search(r"fwd-status=(\d+)", reply.header("cache-status") or "")
    return m.group(1) if m else None


class TestRailFlowContract:
    """The same behaviour from both edges' adapters."""

    async def test_miss_then_hit(self, edge: Edge, origin: StandinOrigin) -> None:
        first = await edge.get(cookie=cookie())
        assert (first.status, first.detail, fwd_status(first)) == (200, "miss", "200")
        await edge.drain()
        assert (await edge.get(cookie=cookie())).detail == "hit"
        assert origin.stats()["counts"]["list"] == 1

    async def test_a_burst_on_a_stale_entry_revalidates_once(
        self, edge: Edge, origin: StandinOrigin
    ) -> None:
        await edge.get(cookie=cookie())
        await edge.drain()
        await edge.advance(90_000)
        # The refresh takes 800 ms (inside the budget): the burst sees the entry stale while
        # it runs; on a slow machine the burst's last requests may already see it refreshed.
        origin.control("mode", {"mode": "slow", "delay_ms": 800})
        details = [(await edge.get(cookie=cookie())).detail for _ in range(4)]
        assert details[0] == "stale-while-revalidate"
        assert set(details) <= {"stale-while-revalidate", "hit"}
        await edge.drain()
        assert origin.stats()["counts"]["list"] == 2
        assert (await edge.get(cookie=cookie())).detail == "hit"

    @pytest.mark.parametrize(
        ("mode", "fwd"),
        [("down", "503"), ("junk", "200"), ("slow", None)],  # junk: the origin did answer
    )
    async def test_origin_faults_give_stale_if_error_then_the_default_list(
        self, edge: Edge, origin: StandinOrigin, mode: str, fwd: str | None
    ) -> None:
        fresh = await edge.get(cookie=cookie())
        await edge.drain()
        origin.control("mode", {"mode": mode, "delay_ms": 2 * BUDGET_MS})
        await edge.advance(400_000)  # past stale-while-revalidate, inside stale-if-error
        stale = await edge.get(cookie=cookie())
        assert (stale.status, stale.detail, stale.json["degraded"]) == (200, "stale-if-error", True)
        assert stale.items == fresh.items
        await edge.advance(4_000_000)  # nothing servable is left
        default = await edge.get(cookie=cookie())
        assert (default.status, default.detail, default.fault) == (200, "default", "")
        assert fwd_status(default) == fwd and default.items == ["DEFAULT-1"]
        await edge.drain()
        events = origin.stats()["events"]
        # an exposure for the fresh and the stale answer, none for the default list; the
        # stale-if-error answer was degraded, so its exposure has a guardrail marker beside it
        exposures = [e for e in events if not e.get("degraded")]
        assert len(exposures) == 2
        assert [e["event_id"] for e in events if e.get("degraded")] == [
            exposures[1]["event_id"] + "-d"
        ]

    async def test_a_cache_that_cannot_read_still_answers_from_the_origin(self, edge: Edge) -> None:
        await edge.break_cache(read=True)
        reply = await edge.get(cookie=cookie())
        assert (reply.status, reply.detail, reply.fault) == (200, "miss", "cache-error")
        assert "stored" not in (reply.header("cache-status") or "")
        assert reply.json["degraded"] is False and len(reply.items) == 5
        await edge.drain()
        assert "cache read" in edge.logged() and SHOPPER not in edge.logged()

    async def test_a_cache_that_cannot_write_is_not_a_hit_later(self, edge: Edge) -> None:
        await edge.break_cache(write=True)
        first = await edge.get(cookie=cookie())
        assert (first.status, first.detail, first.fault) == (200, "miss", "cache-error")
        await edge.drain()
        await edge.break_cache()
        assert (await edge.get(cookie=cookie())).detail == "miss"

    async def test_a_failing_cache_and_origin_give_the_default_list(
        self, edge: Edge, origin: StandinOrigin
    ) -> None:
        await edge.break_cache(read=True, write=True)
        origin.control("mode", {"mode": "down"})
        reply = await edge.get(cookie=cookie())
        assert (reply.status, reply.detail, reply.fault) == (200, "default", "cache-error")
        assert fwd_status(reply) == "503"

    @pytest.mark.parametrize("name", ["decide", "freshness", "answer_from_list"])
    async def test_a_bug_in_the_core_gives_the_default_list(self, edge: Edge, name: str) -> None:
        await edge.get(cookie=cookie())
        await edge.drain()
        await edge.break_core(name)
        reply = await edge.get(cookie=cookie())  # the stored entry's key: a hit but for the bug
        assert (reply.status, reply.detail, reply.fault) == (200, "default", "core-error")
        assert reply.items == ["DEFAULT-1"] and reply.json["degraded"] is True
        assert reply.header("cache-control") == "private, no-store"
        await edge.drain()
        assert "RuntimeError" in edge.logged() and SHOPPER not in edge.logged()

    async def test_every_origin_request_carries_the_trace(
        self, edge: Edge, origin: StandinOrigin
    ) -> None:
        origin.control("segment", {"shopper": SHOPPER, "hseg": valid_token().split(".")[1]})
        await edge.get(cookie=shopper_cookie(), traceparent=TRACE)  # asks for a segment
        await edge.get("/p13n/v1/rail/buy-again", cookie=cookie(), traceparent=TRACE)
        await edge.drain()
        await edge.advance(90_000)
        await edge.get(cookie=cookie(), traceparent=TRACE)  # stale: revalidated
        await edge.drain()
        traces: list[Any] = origin.stats()["traces"]
        feeds = [feed for feed, _ in traces]
        assert feeds == ["segment-token", "list", "recommendations", "list"]
        assert [trace for _, trace in traces] == [TRACE] * 4
