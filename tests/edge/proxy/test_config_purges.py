"""Purges and the edge config over time: bounded heartbeats however much was purged, catch-up
without rail traffic and after a resubscription, soft purges of everything, and how often
the edge asks the origin for its config."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from cache_keys.wire import PurgeMessage
from edge.proxy.app import EdgeRuntime, create_app
from edge.proxy.config import ConfigHolder
from edge.proxy.heartbeat import heartbeat_doc, send_heartbeats
from edge.proxy.purges import PurgeStats, apply_purge, catch_up, subscribe_purges
from edge.proxy.store import ResponseStore
from ops.local.redis import RedisServer
from origin.feeds import MAX_HEARTBEAT_BYTES
from tests.support import data
from tests.support.asgi import app_client
from tests.support.clock import FakeClock
from tests.support.data import HSEGS
from tests.support.proxy import proxy_settings, resp
from tests.support.servers import OriginProcess
from tests.support.timing import async_wait_until

pytestmark = pytest.mark.anyio
BIG = [f"sku:t-{i:04d}" for i in range(1000)]  # the admin API's maximum in one invalidation
LIST_PATH = f"/v1/segments/{HSEGS[0]}/list?variant=control"


async def invalidate(origin: OriginProcess, tags: list[str], mode: str = "soft") -> str:
    async with httpx.AsyncClient(base_url=origin.url, timeout=10) as admin:
        r = await admin.post(
            "/v1/admin/invalidations",
            json={"tags": tags, "mode": mode},
            headers=data.bearer(data.MERCH),
        )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def edges_of(origin: OriginProcess, inv_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=origin.url, timeout=5) as admin:
        r = await admin.get(f"/v1/admin/invalidations/{inv_id}", headers=data.bearer(data.MERCH))
    assert r.status_code == 200, r.text
    edges: dict[str, Any] = r.json()["edges"]
    return edges


async def until(check: Any, what: str, within_s: float = 15) -> None:
    """Poll an async predicate; a deadline, not a timing assertion."""
    await async_wait_until(check, within_s, what)


async def applied_everywhere(origin: OriginProcess, *ids: str) -> None:
    async def check() -> bool:
        for inv_id in ids:
            e = await edges_of(origin, inv_id)
            if e["live"] < 1 or e["applied"] != e["live"]:
                return False
        return True

    await until(check, f"not applied by every live edge: {ids}")


def quicken(origin: OriginProcess) -> None:
    """Restart the origin with a 1 s config max-age (the refresher's period)."""
    origin.kill()
    origin.env["P13N_EDGE_CONFIG_MAX_AGE_S"] = "1"
    origin.start()


# (6) heartbeats stay bounded however many tags were ever purged


async def test_a_1000_tag_purge_keeps_heartbeats_accepted_and_counted(edge, origin) -> None:
    runtime: EdgeRuntime = edge.runtime
    await until(lambda: _true(runtime.purges.connected), "purge subscriber never connected")
    big = await invalidate(origin, BIG)
    later = await invalidate(origin, ["sku:S0-001"])
    await applied_everywhere(origin, big, later)  # the edge stays live and counts both
    assert big in runtime.config.applied_purges and later in runtime.config.applied_purges
    assert runtime.config.config is not None and len(runtime.config.config.generations) > 1000
    assert len(orjson.dumps(heartbeat_doc(runtime, 0))) < MAX_HEARTBEAT_BYTES // 2


async def test_a_purge_caught_up_by_a_pulled_config_counts_as_applied(origin) -> None:
    settings = proxy_settings(origin, redis_url=None)  # nothing is pushed to this edge
    runtime = EdgeRuntime.open(settings)
    async with app_client(create_app(settings, runtime), base_url="http://shop.test"):
        big = await invalidate(origin, BIG)
        await catch_up(runtime.config, runtime.store)
        assert runtime.config.revision is not None and runtime.config.revision >= 1
        await applied_everywhere(origin, big)
        assert big not in runtime.config.applied_purges  # it was the revision that counted


async def test_a_refused_heartbeat_is_logged_once_without_shopper_data(origin, caplog) -> None:
    settings = proxy_settings(origin, edge_id="x" * 41, heartbeat_s=0.05)  # origin says 400
    runtime = EdgeRuntime.open(settings)
    caplog.set_level(logging.INFO, logger="p13n.edge.heartbeat")
    task = asyncio.get_running_loop().create_task(send_heartbeats(runtime))
    try:
        await until(
            lambda: _true(origin.requests_to("/v1/edge/heartbeat") >= 4), "no heartbeats sent"
        )
    finally:
        runtime.stopping.set()
        await asyncio.wait_for(task, 5)
        await runtime.client.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "HTTP 400" in warnings[0].getMessage()
    assert "p13n_sid" not in caplog.text


async def _true(value: bool) -> bool:
    return value


# (7) missed purges are caught up without rail traffic and after a resubscription


async def test_a_plain_cache_edge_without_traffic_catches_up_a_missed_purge(origin) -> None:
    quicken(origin)
    settings = proxy_settings(
        origin, core=None, redis_url=None, heartbeat_s=0, forward_admin=True
    )  # the segment list is an edge feed: proxied only when the operator opts in
    runtime = EdgeRuntime.open(settings)
    async with app_client(create_app(settings, runtime), base_url="http://shop.test") as edge:
        assert (await edge.get(LIST_PATH)).status_code == 200
        assert len(runtime.store) == 1  # tagged with its items' sku tags
        await invalidate(origin, ["sku:S0-001"], "hard")
        # no request at all from here on: only the refresher can notice
        await until(lambda: _true(len(runtime.store) == 0), "missed purge never caught up")
        assert runtime.config.config is not None
        assert runtime.config.config.generations["sku:s0-001"][1] >= 1


async def test_a_resubscription_pulls_what_was_published_meanwhile(origin, tmp_path) -> None:
    (tmp_path / "quiet").mkdir()
    quiet = RedisServer(data_dir=tmp_path / "quiet").start()  # never hears a purge
    client = httpx.AsyncClient()
    holder = ConfigHolder(client, origin.url)
    store, stats, stop = ResponseStore(), PurgeStats(), asyncio.Event()
    await holder.load()
    task = asyncio.get_running_loop().create_task(
        subscribe_purges(
            quiet.url, "p13n:purge", config=holder, store=store, stats=stats, stop=stop
        )
    )
    try:
        await until(lambda: _true(stats.connected), "never subscribed")
        await invalidate(origin, ["sku:S0-004"])
        r = aioredis.Redis.from_url(quiet.url)
        await r.client_kill_filter(_type="pubsub")
        await r.aclose()

        async def caught_up() -> bool:
            gens = holder.config.generations if holder.config else {}
            return gens.get("sku:s0-004", (0, 0))[0] >= 1

        await until(caught_up, "the resubscription pulled no config")
        assert stats.reconnects >= 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await client.aclose()
        quiet.close()


# (9) a purge of everything reaches untagged entries


def _soft_or_hard_all(mode: str) -> PurgeMessage:
    return PurgeMessage("inv-1-abcd", mode, ("*",), {"*": (1, 1 if mode == "hard" else 0)}, (), 0)


async def test_a_soft_purge_of_all_makes_every_entry_stale() -> None:
    store = ResponseStore()
    store.put("GET /untagged", resp(b"a"))
    store.put("GET /tagged", resp(b"b", tags=frozenset({"sku:a-1"})))
    async with httpx.AsyncClient() as client:
        apply_purge(_soft_or_hard_all("soft"), ConfigHolder(client, "http://unused"), store)
    assert len(store) == 2
    assert [v.lifetime for _, v in store.entries()] == [0.0, 0.0]


async def test_a_hard_purge_of_all_drops_every_entry() -> None:
    store = ResponseStore()
    store.put("GET /untagged", resp(b"a"))
    store.put("GET /tagged", resp(b"b", tags=frozenset({"sku:a-1"})))
    async with httpx.AsyncClient() as client:
        apply_purge(_soft_or_hard_all("hard"), ConfigHolder(client, "http://unused"), store)
    assert len(store) == 0


# (10) the config is not fetched per request when the origin has none or is down


class Answers:
    """An origin stand-in at the transport: counts config fetches, answers as told."""

    def __init__(self) -> None:
        self.fetches = 0
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(404, json={"title": "Not found"})


async def _requests(holder: ConfigHolder, n: int) -> None:
    for _ in range(n):
        assert await holder.current() is None
        await asyncio.sleep(0)  # let a background refresh run


async def test_a_404_is_cached_for_the_config_ttl() -> None:
    answers, clock = Answers(), FakeClock(time.time())
    async with httpx.AsyncClient(transport=httpx.MockTransport(answers)) as client:
        holder = ConfigHolder(client, "http://origin.test", clock=clock)
        await _requests(holder, 50)
        assert answers.fetches == 1 and holder.absent
        clock.advance(29)
        await _requests(holder, 50)
        assert answers.fetches == 1
        clock.advance(2)  # past the default 30 s TTL: asked once more
        await _requests(holder, 50)
        assert answers.fetches == 2


async def test_an_unreachable_origin_is_retried_with_a_backoff() -> None:
    answers, clock = Answers(), FakeClock(time.time())
    answers.down = True
    async with httpx.AsyncClient(transport=httpx.MockTransport(answers)) as client:
        holder = ConfigHolder(client, "http://origin.test", clock=clock)
        await _requests(holder, 50)
        assert answers.fetches == 1
        clock.advance(1)  # first retry after 1 s
        await _requests(holder, 50)
        assert answers.fetches == 2
        clock.advance(1)  # then 2 s: not yet
        await _requests(holder, 50)
        assert answers.fetches == 2
        clock.advance(1)
        await _requests(holder, 50)
        assert answers.fetches == 3
        answers.down = False
        clock.advance(4)
        await _requests(holder, 50)
        assert answers.fetches == 4 and holder.absent and holder.failures == 0


async def test_a_pushed_purge_pulls_the_config_so_a_rule_change_arrives_with_it(origin) -> None:
    """A merchandising rule travels in the config, not in the purge message: the purge the
    rule change sends makes the edge pull the config before it counts the purge applied."""
    client = httpx.AsyncClient()
    holder = ConfigHolder(client, origin.url)
    store, stats, stop = ResponseStore(), PurgeStats(), asyncio.Event()
    await holder.load()
    assert holder.config is not None and holder.config.rules == ()
    task = asyncio.get_running_loop().create_task(
        subscribe_purges(
            origin.redis.url, "p13n:purge", config=holder, store=store, stats=stats, stop=stop
        )
    )
    try:
        await until(lambda: _true(stats.connected), "never subscribed")
        rule = {"name": "pushed", "kind": "block", "skus": ["S0-001"], "routes": ["home"]}
        async with httpx.AsyncClient(base_url=origin.url, timeout=10) as admin:
            r = await admin.post("/v1/admin/rules", json=rule, headers=data.bearer(data.MERCH))
        assert r.status_code == 201, r.text
        await until(lambda: _true(stats.applied >= 1), "the rule's purge never arrived")
        # counted (and reported in heartbeats) only after the pull: the config holds the rule
        assert holder.config is not None
        assert [x.name for x in holder.config.rules] == ["pushed"]
        assert holder.applied_purges == [r.json()["invalidation"]]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await client.aclose()
