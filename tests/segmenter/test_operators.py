"""The pure operators: event validation, shopper features, partition decisions, segments."""

from __future__ import annotations

import random

import pytest

from segmenter import aggregates, event, features
from segmenter.aggregates import Entry, PartitionParams, PartitionState
from segmenter.event import Event, Rejection
from segmenter.features import FeatureParams, ShopperState
from segmenter.schema import PIF_DECAY_PER_BASKET
from segmenter.segments import SegmentRulesError, load_rules, parse_rules, segment

RULES = load_rules()
FP = FeatureParams(half_life_ms=3_600_000, rules=RULES, segment_key=b"k" * 32)
PP = PartitionParams(allowed_lateness_ms=60_000, max_clock_skew_ms=60_000)
T0 = 1_700_000_000_000
DAY = 86_400_000


def e(kind: str, ts: int = T0, **kw) -> Event:
    base = {"event_id": f"{kind}-{ts}-{kw.get('item', '')}", "user": "u1"}
    base.update(kw)
    return Event(type=kind, ts=ts, **base)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"v": 99}, "v"),
        ([], "$"),
        ({"v": 1, "event_id": "e", "type": "view", "user": "u", "ts": T0}, "item"),
        ({"v": 1, "event_id": "é", "type": "view", "user": "u", "item": "a", "ts": T0}, "event_id"),
        ({"v": 1, "event_id": "e", "type": "view", "user": "u", "item": "a", "ts": "1"}, "ts"),
        (
            {"v": 1, "event_id": "e", "type": "view", "user": "u", "item": "a", "ts": T0, "bot": 1},
            "bot",
        ),
        ({"v": 1, "event_id": "e", "type": "exposure", "user": "u", "ts": T0}, "experiment"),
        (
            {"v": 1, "event_id": "e" * 65, "type": "view", "user": "u", "item": "a", "ts": T0},
            "event_id",
        ),
        ({"v": True, "event_id": "e", "type": "view", "user": "u", "item": "a", "ts": T0}, "v"),
        ({"v": 1.5, "event_id": "e", "type": "view", "user": "u", "item": "a", "ts": T0}, "v"),
        ({"v": 1, "event_id": "e", "type": "view", "user": "u", "item": "a", "ts": T0 + 0.5}, "ts"),
        (
            {
                "v": 1,
                "event_id": "e",
                "type": "view",
                "user": "u",
                "item": "a",
                "ts": T0,
                "price": float("nan"),
            },
            "price",
        ),
    ],
)
def test_validation_names_the_field(doc, field) -> None:
    got = event.validate(doc)
    assert isinstance(got, Rejection) and got.field == field


def test_whole_floats_are_integers_as_json_schema_reads_them() -> None:
    # Issue 16, item 7: the published schema says "integer", and JSON Schema counts 2.0 as
    # one; the collector refused it ("ts: must be an integer") for any client that wrote
    # numbers as floats.
    doc = {"v": 1.0, "event_id": "e", "type": "purchase", "user": "u", "item": "a"}
    got = event.validate({**doc, "ts": float(T0), "qty": 2.0, "price": 3})
    assert isinstance(got, event.Event), got
    assert (got.ts, got.qty) == (T0, 2) and type(got.ts) is int and type(got.qty) is int


def test_msgpack_round_trip_and_garbage() -> None:
    ev = e(
        "purchase",
        item="sku-1",
        price=9.99,
        qty=2,
        category="grocery",
        bot=True,
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    assert event.decode(event.encode(ev)) == ev
    assert isinstance(event.decode(b"\xc1"), Rejection)


def test_cart_purchase_recent_and_repeat_purchases() -> None:
    evs = [
        e("view", T0, item="a"),
        e("view", T0 + 1, item="b"),
        e("view", T0 + 2, item="a"),
        e("add_to_cart", T0 + 3, item="a", qty=2),
        e("add_to_cart", T0 + 4, item="b"),
        e("remove_from_cart", T0 + 5, item="b", qty=5),
        e("purchase", T0 + 6, item="a", price=5.0, qty=2),
        e("purchase", T0 + 9, item="a", price=5.0),
    ]
    s = features.apply(ShopperState(), [(f"{ev.ts}-0", ev) for ev in evs], FP)
    assert s.recent == ["a", "b"] and s.cart == {}
    # quantity, last, first, purchases, basket-decayed frequency, basket (one session: one)
    assert s.bought == {"a": (3, T0 + 9, T0 + 6, 2, 1.0, 1)}
    assert s.scalars["orders"] == "2" and s.last_id == f"{T0 + 9}-0"
    assert s.scalars["seg"].startswith("returning|")


def test_item_frequency_decays_per_basket_once_per_basket() -> None:
    # Three baskets (sessions): milk in all three (twice in the first), bread in the first.
    evs = [
        e("purchase", T0, item="milk", session="s1"),
        e("purchase", T0 + 1, item="milk", session="s1"),
        e("purchase", T0 + 2, item="bread", session="s1"),
        e("purchase", T0 + DAY, item="milk", session="s2"),
        e("purchase", T0 + 2 * DAY, item="milk", session="s3"),
    ]
    s = features.apply(ShopperState(), [(f"{ev.ts}-0", ev) for ev in evs], FP)
    assert s.scalars["baskets"] == "3"
    d = PIF_DECAY_PER_BASKET
    assert s.bought["milk"][3:] == (4, (1.0 * d + 1.0) * d + 1.0, 3)
    assert s.bought["bread"][3:] == (1, 1.0, 1)  # decayed when read: 1.0 * d ** (3 - 1)
    # A stored value from before the frequency was kept reads as undecayed purchases.
    assert features.bought_value("2|9|5|2", baskets=7) == (2, 9, 5, 2, 2.0, 7)


def test_affinity_decays_with_the_half_life() -> None:
    s = features.apply(
        ShopperState(),
        [
            ("1-0", e("view", T0, item="a", category="home")),
            ("2-0", e("view", T0 + 3_600_000, item="b", category="home")),
        ],
        FP,
    )
    assert s.aff["home"] == (0.5 + 1.0, T0 + 3_600_000)


def test_features_do_not_depend_on_batch_boundaries() -> None:
    rng = random.Random(1)
    kinds = ["view", "add_to_cart", "remove_from_cart", "purchase", "search"]
    evs = [
        (
            f"{T0 + i}-0",
            e(
                rng.choice(kinds),
                T0 + rng.randrange(10**7),
                item=f"i{rng.randrange(9)}",
                category=f"c{rng.randrange(5)}",
                price=rng.uniform(1, 50),
            ),
        )
        for i in range(300)
    ]
    whole = features.apply(ShopperState(), evs, FP)
    s = ShopperState()
    for cut in range(0, 300, 17):
        new = features.apply(s, evs[cut : cut + 17], FP)
        # Through the stored form, as the processor does between batches.
        s = _roundtrip(s, new)
    assert s == whole


def _roundtrip(old: ShopperState, new: ShopperState) -> ShopperState:
    changed, recent = features.diff(old, new)
    flat = [list(sum(old_pairs, ())) for old_pairs in _stored(old)]
    for idx, sets, dels in changed:
        d = dict(zip(flat[idx][::2], flat[idx][1::2], strict=True))
        d.update(zip(sets[::2], sets[1::2], strict=True))
        for k in dels:
            d.pop(k)
        flat[idx] = [x for kv in d.items() for x in kv]
    flat[1] = list(recent if recent is not None else old.recent)
    return features.from_redis([[x.encode() for x in part] for part in flat])


def _stored(s: ShopperState) -> list[list[tuple[str, str]]]:
    p = features._pair
    return [
        [*s.scalars.items(), ("last_id", s.last_id)] if s.last_id else list(s.scalars.items()),
        [],
        [(k, str(v)) for k, v in s.cart.items()],
        [(k, p(v)) for k, v in s.bought.items()],
        [(k, p(v)) for k, v in s.aff.items()],
        [(k, p(v)) for k, v in s.exp.items()],
    ]


def _entries(evs: list[Event], start: int = 0) -> list[Entry]:
    return [Entry(f"{T0}-{start + i}", event.encode(ev), ev) for i, ev in enumerate(evs)]


def test_dispositions() -> None:
    evs = [
        e("view", T0, item="a", event_id="x1"),
        e("view", T0, item="a", event_id="x1"),
        e("view", T0 - 120_000, item="b", event_id="late"),
        e("view", T0 + 5, user="gone", item="c"),
    ]
    entries = _entries(evs)
    entries.append(Entry(f"{T0}-9", b"", e("view", T0 + 3_600_000, item="f", event_id="fut")))
    entries.append(Entry(f"{T0}-10", b"\xc1", None, Rejection("$", "not msgpack")))
    st, fx = aggregates.apply(PartitionState(), entries, frozenset({"gone"}), PP)
    assert dict(fx.counters) == {"applied": 1, "duplicate": 1, "late": 1, "erased": 1, "dead": 2}
    assert [r.field for _, r in fx.dead] == ["ts", "$"]
    assert fx.late["total"] == 1 and next(iter(fx.pop.values())) == {"a": 1}
    assert [x.event.event_id for x in fx.archive if x.event] == ["x1", "x1", "late"]
    _, again = aggregates.apply(st, entries, frozenset(), PP)
    assert dict(again.counters) == {"skip": len(entries)} and again.archive == []


def test_experiments_count_distinct_shoppers_and_skip_bots() -> None:
    evs = [
        e("exposure", T0, experiment="x", variant="b", event_id="1"),
        e("exposure", T0 + 1, experiment="x", variant="b", event_id="2"),
        e("purchase", T0 + 2, item="a", price=10.0, qty=2),
        e("purchase", T0 + 3, item="c", price=1.25),
        e("exposure", T0, experiment="x", variant="control", user="bot", bot=True, event_id="3"),
        e("purchase", T0 - 5, user="u2", item="a", price=3.0),
        e("exposure", T0, user="u2", experiment="x", variant="control", event_id="4"),
    ]
    _, fx = aggregates.apply(PartitionState(), _entries(evs), frozenset(), PP)
    day = T0 // DAY
    assert dict(fx.exp["x"]) == {
        "x:b": 1, "o:b": 2, "r:b": 2125, "c:b": 1, "x:control": 1,
        # the shopper's revenue is the sum of both orders: one contribution of 2125 cents
        "rc:b": 2125, "rq:b": 2125**2, "oq:b": 2**2, "ro:b": 2125 * 2,
        f"d:{day}:x:b": 1, f"d:{day}:c:b": 1, f"d:{day}:x:control": 1, "k:100000": 2,
        "e:b": 2, "e:control": 1,  # exposure events (the guardrails' denominator), bots not
    }  # fmt: skip


def test_covisitation_within_a_session() -> None:
    evs = [
        e("view", T0, item="a", session="s"),
        e("view", T0 + 1, item="b", session="s"),
        e("add_to_cart", T0 + 2, item="a", session="s"),
    ]
    _, fx = aggregates.apply(PartitionState(), _entries(evs), frozenset(), PP)
    assert fx.covis == {"b": {"a": 1 + 2}, "a": {"b": 1 + 2}}
    # Each item's own weight in the session, the norm the similarity divides by.
    assert fx.occ == {"a": 1 + 2, "b": 1}


def test_segment_rules_are_validated_and_bounded() -> None:
    assert len(RULES.all_segments()) == 4 * 9 * 3
    assert (
        segment({"orders": 3, "top_category": "toys", "avg_price": 150}, RULES) == "loyal|toys|high"
    )
    with pytest.raises(SegmentRulesError, match="max_segments"):
        parse_rules(
            {
                "version": 1,
                "max_segments": 2,
                "dimension": [
                    {"name": "a", "feature": "top_category", "values": ["x", "y"], "otherwise": "z"}
                ],
            }
        )
    with pytest.raises(SegmentRulesError, match="unknown numeric feature"):
        parse_rules(
            {
                "version": 1,
                "dimension": [
                    {
                        "name": "a",
                        "otherwise": "z",
                        "rules": [{"value": "b", "when": {"height": {"min": 1}}}],
                    }
                ],
            }
        )


def test_an_erased_shoppers_bad_events_are_not_dead_lettered() -> None:
    bad = e("view", T0 + 3_600_000, user="gone", item="f", event_id="fut")  # beyond the skew
    entries = [Entry(f"{T0}-1", event.encode(bad), bad)]
    _, fx = aggregates.apply(PartitionState(), entries, frozenset({"gone"}), PP)
    assert dict(fx.counters) == {"erased": 1} and fx.dead == [] and fx.archive == []


def test_an_unknown_field_name_never_becomes_a_rejections_field() -> None:
    # Rejection fields become metric labels (collector and processor): a client's made-up key
    # (here an e-mail address) goes into the reason, bounded, not into the label.
    doc = {"v": 1, "event_id": "x", "type": "view", "user": "u", "ts": T0}
    for key in ("jane.doe@example.com", "k" * 200_000):
        rej = event.validate({**doc, key: 1})
        assert isinstance(rej, Rejection) and rej.field == "$"
        assert rej.problem.startswith("unknown field ") and len(rej.reason) < 100


def test_validation_memo_stays_small_however_many_shoppers_and_sessions() -> None:
    """Every shopper and session is new sooner or later: the memo of values that matched
    their pattern holds at most 4,096 per field (a process validates for as long as it runs)."""
    for n in range(20_000):
        doc = {"v": 1, "event_id": f"e{n}", "type": "view", "user": f"u{n}", "item": "a",
               "ts": T0, "session": f"s{n}"}  # fmt: skip
        assert isinstance(event.validate(doc), Event)
    assert max(len(v) for v in event._KNOWN.values()) <= 4096
    assert max(len(v) for v in event._NARROW_OK.values()) <= 4096
