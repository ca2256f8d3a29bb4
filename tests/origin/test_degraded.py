"""Degraded mode: Redis stopped or paused mid-test; answers from memory, never a 500."""

from __future__ import annotations

import pytest
import redis

from origin.app import create_app
from origin.settings import Settings
from tests.support import data
from tests.support.asgi import app_client
from tests.support.clock import FakeClock
from tests.support.data import NOW_MS, TOKENS, sid

pytestmark = pytest.mark.anyio


def seed(url: str) -> None:
    r = redis.Redis.from_url(url)
    data.put_popular(r, data.items(("pop1", 9, "toys"), ("pop2", 8, "food")))
    data.put_shopper(r, sid(1), recent=["x"], affinity={"food": 1.0})
    r.close()


def settings_for(url: str, budget_ms: int = 200) -> Settings:
    return Settings(
        redis_url=url, admin_tokens=dict(TOKENS), redis_timeout_ms=budget_ms, breaker_ms=1000
    )


async def test_redis_killed_mid_test_degrades_then_recovers(redis_factory):
    server = redis_factory()
    seed(server.url)
    clock = FakeClock(NOW_MS / 1000)
    app = create_app(settings_for(server.url), clock=clock)
    cookie = {"Cookie": f"p13n_sid={sid(1)}"}
    async with app_client(app) as client:
        ok = await client.get("/v1/recommendations", headers=cookie)
        assert ok.json()["degraded"] is False
        server.kill()
        for _ in range(3):  # the first fails fast on the dead socket, the rest on the breaker
            r = await client.get("/v1/recommendations", headers=cookie)
            assert r.status_code == 200
            body = r.json()
            assert body["degraded"] is True
            assert [i["item"] for i in body["items"]] == ["pop1", "pop2"]
            assert r.headers.get_list("set-cookie") == []
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/v1/edge/config")).status_code == 200  # last good snapshot
        metrics = (await client.get("/metrics")).text
        assert 'p13n_origin_degraded_answers_total{reason="redis"} 3.0' in metrics
        server.start()
        seed(server.url)
        clock.advance(1.5)  # past the breaker
        r = await client.get("/v1/recommendations", headers=cookie)
        assert r.json()["degraded"] is False
        assert (await client.get("/readyz")).status_code == 200


async def test_redis_slower_than_budget_degrades(redis_factory):
    server = redis_factory()
    seed(server.url)
    app = create_app(settings_for(server.url, budget_ms=100), clock=FakeClock(NOW_MS / 1000))
    async with app_client(app) as client:
        admin = redis.Redis.from_url(server.url)
        admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        try:
            r = await client.get("/v1/recommendations", headers={"Cookie": f"p13n_sid={sid(1)}"})
            assert r.status_code == 200 and r.json()["degraded"] is True
            assert r.json()["items"][0]["item"] == "pop1"
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
            admin.close()
        metrics = (await client.get("/metrics")).text
        assert 'p13n_origin_redis_seconds_count{op="features",outcome="timeout"} 1.0' in metrics


async def test_no_redis_at_all_still_answers_and_admin_gets_503():
    app = create_app(Settings(redis_url=None, admin_tokens=dict(TOKENS)))
    async with app_client(app) as client:
        r = await client.get("/v1/recommendations")
        assert r.status_code == 200 and r.json() == {
            "v": 1, "route": "home", "items": [], "variants": {}, "degraded": True,
        }  # fmt: skip
        admin = await client.get(
            "/v1/admin/experiments", headers={"Authorization": f"Bearer {data.EXPER}"}
        )
        assert admin.status_code == 503 and admin.headers["retry-after"]
        assert admin.headers["content-type"] == "application/problem+json"
        assert (await client.get("/v1/edge/config")).status_code == 503
