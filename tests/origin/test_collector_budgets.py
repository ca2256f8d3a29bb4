"""Collector rate budgets (issue 18, item 4): the shop's backend gets its own, larger budget;
browser traffic is limited per shopper, not per TCP peer (every shopper behind an edge comes
from the edge's address)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cache_keys.wire import SHOPPER_COOKIE
from origin.app import create_app
from origin.settings import Settings
from tests.support.asgi import app_client
from tests.support.data import EXPER, NOW_MS, SERVICE, TOKENS, bearer, sid

pytestmark = pytest.mark.anyio


def batch(n: int, start: int = 0, user: str | None = None) -> dict[str, object]:
    evs = [{"v": 1, "event_id": f"b{start + i}", "type": "view", "item": "sku-1", "ts": NOW_MS}
           for i in range(n)]  # fmt: skip
    if user is not None:
        for e in evs:
            e["user"] = user
    return {"events": evs}


def as_shopper(shopper: str) -> dict[str, str]:
    return {"Cookie": f"{SHOPPER_COOKIE.name}={shopper}"}


@pytest.fixture
def settings(redis_url: str) -> Settings:
    base = Settings(redis_url=redis_url, admin_tokens=dict(TOKENS), partitions=2)
    return replace(base, collector_rate_per_s=0, collector_burst=10,
                   collector_peer_rate_per_s=0, collector_peer_burst=25,
                   collector_service_rate_per_s=0, collector_service_burst=400)  # fmt: skip


async def test_shoppers_behind_one_address_each_get_their_own_budget(settings):
    async with app_client(create_app(settings)) as http:  # one peer address for all
        for n in range(2):
            r = await http.post("/v1/events", json=batch(10, 10 * n), headers=as_shopper(sid(n)))
            assert r.status_code == 202, r.text
        over = await http.post("/v1/events", json=batch(1, 99), headers=as_shopper(sid(0)))
        assert over.status_code == 429 and over.json()["detail"] == "collector rate limit (shopper)"
        assert over.headers["content-type"] == "application/problem+json"
        assert int(over.headers["retry-after"]) >= 1


async def test_the_peer_budget_bounds_a_client_inventing_shopper_ids(settings):
    async with app_client(create_app(settings)) as http:
        codes = [(await http.post("/v1/events", json=batch(5, 5 * n),
                                  headers=as_shopper(sid(100 + n)))).status_code
                 for n in range(6)]  # fmt: skip
    assert codes == [202] * 5 + [429]  # 25 events from one peer, whatever the cookies


async def test_without_a_cookie_the_peer_address_is_the_client(settings):
    async with app_client(create_app(settings)) as http:
        assert (await http.post("/v1/events", json=batch(10, user="cust_1"))).status_code == 202
        over = await http.post("/v1/events", json=batch(1, 50, user="cust_2"))
    assert over.status_code == 429


async def test_a_service_token_has_its_own_larger_budget(settings):
    async with app_client(create_app(settings)) as http:
        headers = bearer(SERVICE)
        for n in range(3):  # 300 events: far over any browser budget
            r = await http.post("/v1/events", json=batch(100, 100 * n, user=f"cust_{n}"),
                                headers=headers)  # fmt: skip
            assert r.status_code == 202 and r.json()["accepted"] == 100
        # browsers from the same address still have their own budgets
        r = await http.post("/v1/events", json=batch(10, 900), headers=as_shopper(sid(1)))
        assert r.status_code == 202
        over = await http.post("/v1/events", json=batch(101, 1000, user="cust_9"), headers=headers)
        assert over.status_code == 429 and over.json()["detail"] == "collector rate limit (service)"


async def test_tokens_without_the_sender_role_are_refused(settings):
    async with app_client(create_app(settings)) as http:
        wrong = await http.post("/v1/events", json=batch(1, user="cust_1"), headers=bearer(EXPER))
        unknown = await http.post("/v1/events", json=batch(1, user="cust_1"),
                                  headers=bearer("not-a-configured-token-000"))  # fmt: skip
    assert wrong.status_code == 403 and unknown.status_code == 401


async def test_a_service_needs_no_site_key(settings):
    keyed = replace(settings, collector_site_keys=frozenset({"pk_live_1"}))
    async with app_client(create_app(keyed)) as http:
        browser = await http.post("/v1/events", json=batch(1, user="cust_1"))
        service = await http.post("/v1/events", json=batch(1, user="cust_1"),
                                  headers=bearer(SERVICE))  # fmt: skip
    assert browser.status_code == 403 and service.status_code == 202
