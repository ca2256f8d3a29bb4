"""Identity stitching in the processor: the pure merge, the ingress rule, and exactly-once
merges under replay and SIGKILL (like every other effect: tests/segmenter/test_exactly_once)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import redis

from segmenter import event, features
from segmenter.event import Event
from segmenter.features import ShopperState
from segmenter.schema import partition_of
from segmenter.stitching import credit, parse_link
from tests.support import segmenter as support
from tests.support.data import sid
from tests.support.timing import POLL_S, scaled

T0 = 1_700_000_000_000
HALF_LIFE_MS = 7 * 86_400_000
CATS = ("dairy", "bakery", "home", "fruit")


def test_merge_adds_counts_combines_purchases_and_puts_newer_views_first() -> None:
    customer = ShopperState(
        scalars={"first_ms": "100", "last_ms": "200", "events": "3", "psum": "1.5", "pcnt": "1",
                 "baskets": "1", "bkey": "c1"},
        recent=["b", "c"], cart={"x": 1},
        bought={"k": (1, 150, 150, 1, 1.0, 1), "m": (1, 150, 150, 1, 1.0, 1)},
        aff={"home": (2.0, 200)}, exp={"e1": ("control", 120)},
    )  # fmt: skip
    anon = ShopperState(
        scalars={"first_ms": "300", "last_ms": "400", "events": "2", "psum": "2.25", "pcnt": "2",
                 "baskets": "2", "bkey": "a2"},
        recent=["a", "b"], cart={"x": 2, "y": 1},
        # k bought in both of the anonymous shopper's baskets: 1 * 0.9 + 1 at basket 2
        bought={"k": (2, 350, 300, 2, 1.9, 2), "n": (1, 300, 300, 1, 1.0, 1)},
        aff={"home": (1.0, 400), "dairy": (1.0, 400)}, exp={"e1": ("fresh", 90), "e2": ("b", 5)},
    )  # fmt: skip
    features.merge(customer, anon, HALF_LIFE_MS)
    assert customer.recent == ["a", "b", "c"]
    assert customer.scalars == {"first_ms": "100", "last_ms": "400", "events": "5",
                                "psum": "3.75", "pcnt": "3",
                                # one sequence of 3 baskets: the anonymous ones came later
                                "baskets": "3", "bkey": "a2"}  # fmt: skip
    assert customer.cart == {"x": 3, "y": 1}
    # Basket-decayed frequencies keep their weight at the merged latest basket (3): the
    # customer's basket stays 1, the anonymous shopper's 1 and 2 become 2 and 3.
    k = customer.bought["k"]
    assert k[:4] == (3, 350, 150, 3) and k[5] == 3
    assert k[4] == pytest.approx(1.0 * 0.9**2 + 1.9)
    assert customer.bought["m"] == (1, 150, 150, 1, 1.0, 1)
    assert customer.bought["n"] == (1, 300, 300, 1, 1.0, 2)
    assert customer.aff["dairy"] == (1.0, 400) and customer.aff["home"][1] == 400
    assert 2.0 < customer.aff["home"][0] < 3.0  # the older score decayed to 400, then added
    assert customer.exp == {"e1": ("fresh", 90), "e2": ("b", 5)}  # earliest exposure wins


def test_an_identify_merges_once_and_names_the_ab_unit() -> None:
    params = features.FeatureParams(HALF_LIFE_MS, support_rules(), b"k" * 16)
    anon = ShopperState(scalars={"events": "2", "last_ms": str(T0)}, recent=["milk"])
    ident = Event("i1", "identify", "cust_1", T0 + 1, anon=sid(1))
    view = Event("v1", "view", "cust_1", T0 + 2, item="cheese")
    s = features.apply(ShopperState(), [("1-1", ident), ("1-2", view)], params,
                       linked={sid(1): anon})  # fmt: skip
    assert s.recent == ["cheese", "milk"] and s.scalars["events"] == "3"
    assert s.scalars["ab"] == sid(1) and s.last_id == "1-2"


def support_rules():
    from segmenter.segments import load_rules  # noqa: PLC0415 - one test needs it

    return load_rules(None)


def test_credit_is_per_session() -> None:
    link = parse_link(b"s1|cust_1")
    assert link == ("s1", "cust_1")
    same = Event("e", "view", sid(1), T0, item="x", session="s1")
    other = Event("e", "view", sid(1), T0, item="x", session="s2")
    assert credit(same, link).user == "cust_1"
    assert credit(other, link) == other
    assert credit(same, None) == same
    assert parse_link(None) is None and parse_link(b"garbage") is None


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"type": "identify"}, "anon"),
        ({"type": "view", "item": "x", "anon": sid(2)}, "anon"),
        ({"type": "identify", "anon": "cust_1"}, "anon"),  # user == anon
    ],
)
def test_identify_events_are_validated(doc: dict[str, object], field: str) -> None:
    base = {"v": 3, "event_id": "e1", "user": "cust_1", "ts": T0}
    result = event.validate({**base, **doc})
    assert isinstance(result, event.Rejection) and result.field == field


def _entries(seed: int) -> tuple[list[tuple[str, int, bytes]], list[tuple[str, int, bytes]]]:
    """Phase 1: 60 anonymous shoppers browse. Phase 2: each signs in as one of 40 customers
    (some customers from two devices), then both keep shopping."""
    rng = random.Random(seed)
    anons = [sid(100 + n) for n in range(60)]
    one: list[Event] = []
    two: list[Event] = []
    for n, anon in enumerate(anons):
        for j in range(20):
            kind = rng.choice(("view", "view", "add_to_cart", "purchase"))
            one.append(Event(f"a{n}-{j}", kind, anon, T0 + rng.randrange(3_600_000),
                             item=f"sku-{rng.randrange(80)}", category=rng.choice(CATS),
                             price=float(rng.randrange(1, 50)), session=f"s{n}"))  # fmt: skip
        variant = rng.choice(("a", "b"))
        one.append(Event(f"x{n}", "exposure", anon, T0 + rng.randrange(3_600_000),
                         experiment="exp1", variant=variant, session=f"s{n}"))  # fmt: skip
        customer = f"cust_{n % 40}"
        two.append(Event(f"i{n}", "identify", customer, T0 + 3_700_000 + n, anon=anon,
                         session=f"s{n}"))  # fmt: skip
        for j in range(10):
            item, cat = f"sku-{rng.randrange(80)}", rng.choice(CATS)
            kind = rng.choice(("view", "view", "purchase"))  # purchases convert carried exposures
            two.append(Event(f"c{n}-{j}", kind, customer, T0 + 3_800_000 + j, item=item,
                             category=cat, price=2.0))  # fmt: skip
    one.sort(key=lambda e: e.ts)
    two.sort(key=lambda e: e.ts)

    def stream(evs: list[Event], base: int) -> list[tuple[str, int, bytes]]:
        return [(f"{e.ts}-{base + i}", partition_of(e.user, support.PARTITIONS), event.encode(e))
                for i, e in enumerate(evs)]  # fmt: skip

    return stream(one, 0), stream(two, 100_000)


def _merged(client: redis.Redis) -> int:
    return sum(1 for n in range(40) if client.hget(support.KEYS.shopper(f"cust_{n}"), "ab"))


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("writes", ["batched", "per-slot"])
def test_merges_are_exactly_once_under_sigkill(redis_factory, tmp_path: Path, writes: str) -> None:
    browsing, signing_in = _entries(seed=5)
    ref_server, victim_server = redis_factory(), redis_factory()
    ref, victim = redis.Redis.from_url(ref_server.url), redis.Redis.from_url(victim_server.url)
    for url, client, name in ((ref_server.url, ref, "ref"), (victim_server.url, victim, "v")):
        support.load(client, browsing)
        support.run_until_drained(url, support.settings(url, tmp_path / name, writes=writes))
        pipe = client.pipeline(transaction=False)
        for stream_id, p, raw in signing_in:
            pipe.xadd(support.KEYS.stream(p), {"e": raw}, id=stream_id)
        pipe.execute()
    support.run_until_drained(ref_server.url, support.settings(ref_server.url, tmp_path / "ref",
                                                               writes=writes))  # fmt: skip
    assert _merged(ref) == 40
    conversions = sum(int(v) for p in range(support.PARTITIONS) for k, v in
                      ref.hgetall(support.KEYS.experiment_counts(p, "exp1")).items()
                      if k.startswith(b"c:"))  # fmt: skip
    assert 0 < conversions <= 60  # 60 exposed shoppers: each converts once, before or after login

    rng = random.Random(9)
    kills = 0
    deadline = time.monotonic() + scaled(120)
    while not support.drained(victim):
        assert time.monotonic() < deadline, "did not drain"
        proc = support.spawn(
            victim_server.url, tmp_path / "v", P13N_BATCH_MAX_EVENTS=str(rng.choice((3, 7, 20))),
            P13N_TEST_KILL_AT_WRITE=str(rng.randint(1, 12) if kills < 6 else 0), P13N_WRITES=writes,
        )  # fmt: skip
        while proc.poll() is None and not support.drained(victim):
            time.sleep(POLL_S)
        if proc.poll() is not None:
            assert proc.poll() == -9, proc.tail()
            kills += 1
        support.stop(proc)
    assert kills >= 3
    assert support.snapshot(victim) == support.snapshot(ref)
    ref.close()
    victim.close()
