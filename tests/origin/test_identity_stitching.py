"""Identity stitching end to end (issue 18, Done when): an anonymous shopper signs in mid-session;
the processor merges their features into the customer's exactly once, later events of that
session are credited to the customer, variants do not move, and erasing the customer erases
both ids. Real Redis (single and cluster), the origin app, the real processor."""

from __future__ import annotations

import gzip
from dataclasses import replace

import anyio
import pytest
import redis

from cache_keys.wire import SHOPPER_COOKIE
from origin.assignment import assign, parse_experiment
from origin.settings import Settings
from segmenter.schema import GROUP, tombstone_digest
from tests.support import data
from tests.support import segmenter as support
from tests.support.data import ADMIN, EXPER, SERVICE, bearer, sid

pytestmark = pytest.mark.anyio
ANON = sid(1)
MIN_MS = 60_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, partitions=support.PARTITIONS)


def jar(anon: str) -> dict[str, str]:
    return {"Cookie": f"{SHOPPER_COOKIE.name}={anon}"}


def ev(i: int, kind: str, item: str, cat: str, session: str, **kw: object) -> dict[str, object]:
    return {"v": 1, "event_id": f"e{i}", "type": kind, "item": item, "category": cat,
            "session": session, "ts": data.NOW_MS - (100 - i) * MIN_MS, **kw}  # fmt: skip


async def process(redis_url: str, tmp_path) -> None:
    """Run the real processor (its own event loop, in a thread) until every partition is
    applied and acknowledged."""
    s = support.settings(redis_url, tmp_path / "archive")
    await anyio.to_thread.run_sync(support.run_until_drained, redis_url, s)


def features(r: redis.Redis, user: str) -> dict[str, object]:
    k = data.KEYS
    return {
        "f": {a.decode(): b.decode() for a, b in r.hgetall(k.shopper(user)).items()},
        "recent": [x.decode() for x in r.lrange(k.recent(user), 0, -1)],
        "cart": {a.decode(): int(b) for a, b in r.hgetall(k.cart(user)).items()},
        "bought": sorted(x.decode() for x in r.hkeys(k.bought(user))),
    }


async def start_experiment(client):
    doc = {"key": "rail-algo", "variations": [{"name": "control"}, {"name": "fresh"}],
           "weights": [0.5, 0.5]}  # fmt: skip
    assert (await client.post("/v1/admin/experiments", json=doc, headers=bearer(EXPER))).is_success
    started = await client.post("/v1/admin/experiments/rail-algo/start", headers=bearer(EXPER))
    await client.app.state.p13n.snapshot.refresh()
    return parse_experiment(started.json()["experiment"])


async def test_signing_in_mid_session_merges_keeps_variants_and_erases_both(
    client, redis_client, redis_url, tmp_path
):
    support.load(redis_client, [])  # the partition streams and the processor's group
    exp = await start_experiment(client)
    variant_of = {
        user: assign(exp, user, route="home", hseg="", now_ms=data.NOW_MS)
        for user in [ANON, *(f"cust_{n}" for n in range(40))]
    }
    # A customer whose own id would land in the other variant: the rule is what keeps it.
    customer = next(u for u, v in variant_of.items() if u != ANON and v != variant_of[ANON])

    # Before: the customer bought a kettle on another visit; the anonymous shopper browses.
    old = ev(1, "purchase", "kettle", "home", "old", user=customer, price=30.0)
    assert (await client.post("/v1/events", json=old)).status_code == 202
    before = await client.get("/v1/recommendations", headers=jar(ANON))
    variants = before.json()["variants"]
    assert variants == {"rail-algo": exp.variations[variant_of[ANON]].name}
    seen = {"v": 1, "event_id": "x1", "type": "exposure", "experiment": "rail-algo",
            "variant": variants["rail-algo"], "session": "s1"}  # fmt: skip
    seen["ts"] = data.NOW_MS - 99 * MIN_MS
    browsing = {"events": [seen, ev(2, "view", "milk", "dairy", "s1"),
                           ev(3, "add_to_cart", "bread", "bakery", "s1")]}  # fmt: skip
    r = await client.post("/v1/events", json=browsing, headers=jar(ANON))
    assert r.json()["accepted"] == 3
    await process(redis_url, tmp_path)

    # Sign-in from the page: the collector takes the anonymous id from the cookie.
    identify = ev(4, "identify", "", "", "s1", user=customer) | {"v": 3}  # registry v3
    del identify["item"], identify["category"]
    r = await client.post("/v1/events", json=identify, headers=jar(ANON))
    assert r.status_code == 202, r.text
    # Applied before the shopper's next events (the merge takes the anonymous features as
    # the identify finds them: docs/ARCHITECTURE.md, Identity).
    await process(redis_url, tmp_path)
    after = {"events": [ev(5, "view", "cheese", "dairy", "s1"),  # this session: the customer's
                        ev(6, "view", "apples", "fruit", "s2"),  # another session: anonymous
                        ev(7, "purchase", "bread", "bakery", "s1", price=2.5)]}  # fmt: skip
    r = await client.post("/v1/events", json=after, headers=jar(ANON))
    assert r.json()["accepted"] == 3
    await process(redis_url, tmp_path)

    cust = features(redis_client, customer)
    assert cust["recent"] == ["cheese", "milk"]
    assert cust["cart"] == {}  # the bread added before the login was bought after it
    assert cust["bought"] == ["bread", "kettle"]
    assert cust["f"]["events"] == "6"  # 1 own + 3 merged + 2 credited; identify is no activity
    assert cust["f"]["ab"] == ANON
    anon = features(redis_client, ANON)
    assert anon["recent"] == ["apples", "milk"]  # its own history stays; cheese went across

    # Results: exposed as the anonymous shopper, converted as the customer, counted once.
    name = variants["rail-algo"]
    counts: dict[bytes, int] = {}
    for p in range(support.PARTITIONS):
        for k, v in redis_client.hgetall(data.KEYS.experiment_counts(p, "rail-algo")).items():
            counts[k] = counts.get(k, 0) + int(v)
    plain = {k: v for k, v in counts.items() if k.split(b":")[0] in (b"x", b"c", b"o", b"r")}
    assert plain == {f"x:{name}".encode(): 1, f"c:{name}".encode(): 1,
                     f"o:{name}".encode(): 1, f"r:{name}".encode(): 250}  # fmt: skip

    # Variants: the service asks by the customer id and gets what the browser got.
    served = await client.get("/v1/recommendations", params={"user": customer},
                              headers=bearer(SERVICE))  # fmt: skip
    assert served.json()["variants"] == variants

    # Exactly once: redeliver every entry; nothing changes (the merge is not applied twice).
    snap = support.snapshot(redis_client)
    for p in range(support.PARTITIONS):
        redis_client.xgroup_setid(data.KEYS.stream(p), GROUP, "0")
    await process(redis_url, tmp_path)
    assert support.snapshot(redis_client) == snap

    # Erasing the customer erases the anonymous id that signed in as them.
    r = await client.delete(f"/v1/admin/shoppers/{customer}", headers=bearer(ADMIN))
    assert r.status_code == 200 and r.json()["linked_anonymous_ids"] == 1
    k = data.KEYS
    for user in (customer, ANON):
        assert redis_client.hget(k.tombstones, tombstone_digest(user)) is not None
        assert not any(redis_client.exists(key) for key in k.shopper_keys(user))
    assert not redis_client.exists(k.link(ANON)) and not redis_client.exists(k.anons(customer))
    for p in range(support.PARTITIONS):  # nor their raw events in the streams
        assert not [e for _, e in redis_client.xrange(k.stream(p))
                    if ANON.encode() in e[b"e"] or customer.encode() in e[b"e"]]  # fmt: skip
    refused = await client.post("/v1/events", json=ev(7, "view", "x", "y", "s1"), headers=jar(ANON))
    assert refused.status_code == 400 and refused.json()["field"] == "user"


async def test_erasing_only_the_anonymous_id_removes_it_from_the_customers_records(
    client, redis_client, redis_url, tmp_path
):
    """The anonymous id leaves every record of its sign-in: the customer's set of linked ids,
    the customer's A/B unit, and the identify event in the customer's stream; the customer
    keeps their own history. Found after the link (a day) is gone too."""
    support.load(redis_client, [])
    customer, k = "cust_7", data.KEYS
    old = ev(1, "purchase", "kettle", "home", "old", user=customer, price=30.0)
    assert (await client.post("/v1/events", json=old)).status_code == 202
    identify = ev(4, "identify", "", "", "s1", user=customer) | {"v": 3}
    del identify["item"], identify["category"]
    assert (await client.post("/v1/events", json=identify, headers=jar(ANON))).status_code == 202
    await process(redis_url, tmp_path)
    assert redis_client.sismember(k.anons(customer), ANON)
    assert features(redis_client, customer)["f"]["ab"] == ANON
    redis_client.delete(k.link(ANON))  # the link expires after a day; the records do not

    r = await client.delete(f"/v1/admin/shoppers/{ANON}", headers=bearer(ADMIN))
    assert r.status_code == 200, r.text
    assert not redis_client.sismember(k.anons(customer), ANON)
    cust = features(redis_client, customer)
    assert "ab" not in cust["f"] and cust["bought"] == ["kettle"]
    for p in range(support.PARTITIONS):
        assert not [e for _, e in redis_client.xrange(k.stream(p)) if ANON.encode() in e[b"e"]]
    archived = [gzip.decompress(f.read_bytes()) for f in (tmp_path / "archive").rglob("*.gz")]
    assert archived and not [a for a in archived if ANON.encode() in a]
    assert redis_client.hget(k.tombstones, tombstone_digest(customer)) is None
