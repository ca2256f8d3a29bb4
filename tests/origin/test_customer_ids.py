"""Customer ids: ``?user=`` (service token) and the collector accept the same ids, of both
kinds, through the one policy; customer ids never reach a key name."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest

from origin.app import create_app
from origin.settings import Settings
from segmenter.schema import partition_of
from segmenter.shoppers import ShopperIds
from tests.support import data
from tests.support.asgi import app_client
from tests.support.data import SERVICE, bearer, sid

pytestmark = pytest.mark.anyio
CUSTOMER = "cust_48213"


def event_doc(user: str, i: int = 1) -> dict[str, object]:
    return {"v": 1, "event_id": f"e{i}", "type": "view", "user": user, "item": "milk",
            "ts": data.NOW_MS, "session": "s1"}  # fmt: skip


async def accepted(http, user: str) -> tuple[int, dict]:
    r = await http.post("/v1/events", json=event_doc(user))
    return r.status_code, r.json()


async def served(http, user: str) -> tuple[int, dict]:
    r = await http.get("/v1/recommendations", params={"user": user}, headers=bearer(SERVICE))
    return r.status_code, r.json()


async def test_a_customer_is_served_by_their_own_id(client, redis_client):
    data.put_popular(redis_client, data.items(("pop1", 9, "toys")))
    data.put_catalog(redis_client, {"milk": ("dairy", 1.0, 10, False)})
    data.put_shopper(redis_client, CUSTOMER, bought={"milk": (2, data.NOW_MS - 86_400_000)})
    r = await client.get("/v1/recommendations", params={"user": CUSTOMER, "route": "buy-again"},
                         headers=bearer(SERVICE))  # fmt: skip
    assert r.status_code == 200
    assert [i["item"] for i in r.json()["items"]] == ["milk"]
    assert not r.json()["degraded"]


async def test_the_collector_takes_customer_ids_onto_their_partition(client, redis_client):
    status, body = await accepted(client, CUSTOMER)
    assert (status, body["accepted"]) == (202, 1)
    stream = data.KEYS.stream(partition_of(CUSTOMER, 2))
    ((_, fields),) = redis_client.xrange(stream)
    assert msgpack.unpackb(fields[b"e"])["user"] == CUSTOMER
    assert not [k for k in redis_client.keys("*") if CUSTOMER.encode() in k]


@pytest.mark.parametrize("user", ["ann@example.com", "a b", "x" * 65, "{u:x}", "a|b"])
async def test_both_refuse_the_same_ids_with_the_reason(client, redis_client, user):
    status, body = await served(client, user)
    assert (status, body["field"]) == (400, "user")
    assert "22-character anonymous shopper id or a customer id" in body["detail"]
    status, body = await accepted(client, user)
    assert (status, body["field"]) == (400, "user")
    ((_, dead),) = redis_client.xrange(data.KEYS.dlq)  # the original bytes, not lost
    assert dead[b"field"] == b"user" and user.encode() in dead[b"raw"]


@pytest.fixture
def shop_settings(settings: Settings) -> Settings:
    return replace(settings, shopper_ids=ShopperIds(r"cust_[0-9]+", 12))


@pytest.mark.parametrize(
    ("user", "ok"),
    [("cust_48213", True), (sid(3), True), ("12345", False), ("cust_48213999", False)],
)
async def test_a_configured_pattern_applies_to_both_alike(shop_settings, clock, user, ok):
    async with app_client(create_app(shop_settings, clock=clock)) as http:
        served_status, _ = await served(http, user)
        accepted_status, _ = await accepted(http, user)
    assert served_status == (200 if ok else 400)
    assert accepted_status == (202 if ok else 400)
