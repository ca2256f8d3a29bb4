"""The shop's recent weight: learned from its own last baskets, rebuilt from stored purchases."""

from __future__ import annotations

from collections import defaultdict

import pytest

from ops.shop.history import HistoryShape, grocery
from segmenter.event import Event, validate
from segmenter.features import FeatureParams, ShopperState, apply, diff
from segmenter.recency import LEARN_K, MIN_SHOPPERS, RecencyLearner, own_rate, pif_max
from segmenter.schema import PIF_DECAY_PER_BASKET
from segmenter.segments import load_rules

PARAMS = FeatureParams(half_life_ms=7 * 86_400_000, rules=load_rules(), segment_key=b"k" * 32)


def _stored(baskets: list[list[str]], user: str = "u1") -> tuple[int, list[bytes]]:
    """A shopper's basket count and ``:bought`` values as the processor stores them."""
    events = []
    for n, basket in enumerate(baskets):
        for i, sku in enumerate(basket):
            ev = validate({"v": 1, "event_id": f"{user}-{n}-{i}", "type": "purchase", "user": user,
                           "item": sku, "ts": 1_767_225_600_000 + n * 86_400_000 + i,
                           "session": f"{user}-{n}"})  # fmt: skip
            assert isinstance(ev, Event)
            events.append((f"{n}-{i}", ev))
    s = apply(ShopperState(), events, PARAMS)
    # the processor's own writes: key index 3 is :bought, its HSET arguments item, value, ...
    [sets] = [h[1] for h in diff(ShopperState(), s)[0] if h[0] == 3]
    return int(s.scalars["baskets"]), [str(v).encode() for v in sets[1::2]]


def test_own_rate_blends_frequency_and_the_recent_baskets() -> None:
    # bought in 2 of 4 baskets, the last two: decayed frequency 1 + 0.9
    pif = 1 + PIF_DECAY_PER_BASKET
    assert own_rate(2, pif, 4, 0.0) == 0.5
    assert own_rate(2, pif, 4, 1.0) == pytest.approx(pif / pif_max(4))
    assert own_rate(2, pif, 4, 0.5) == pytest.approx(0.25 + 0.5 * pif / pif_max(4))
    assert own_rate(4, pif_max(4), 4, 1.0) == pytest.approx(1.0)  # every basket: 1 either way
    assert own_rate(3, 1.0, 0, 0.5) == 0.0


def test_the_state_before_the_last_basket_is_rebuilt_from_what_is_stored() -> None:
    """What the learner ranks equals the rates stored after the earlier baskets alone."""
    history = [["milk", "tea"], ["milk", "soap"], ["tea"], ["milk", "bread"]]
    learner = RecencyLearner()
    learner.add(*_stored(history))
    [(last, rows)] = learner.shoppers
    assert last == 2  # milk and bread; bread is new, so no own item can find it
    before_baskets, before = _stored(history[:-1])
    want = set()
    for value in before:
        _, _, _, times, pif, at = value.decode().split("|")
        decayed = float(pif) * PIF_DECAY_PER_BASKET ** (before_baskets - int(at))
        want.add((own_rate(int(times), decayed, before_baskets, 0.0),
                  own_rate(int(times), decayed, before_baskets, 1.0)))  # fmt: skip
    assert {(round(a, 12), round(b, 12)) for a, b, _ in rows} == {
        (round(a, 12), round(b, 12)) for a, b in want
    }
    assert sorted(hit for _, _, hit in rows) == [False, False, True]  # milk found again


def _learned(habit_days: float, seed: int) -> float | None:
    per_user: dict[str, list[list[str]]] = defaultdict(list)
    sessions: dict[str, str] = {}
    for d in grocery(HistoryShape(shoppers=250, items=1500, days=120, seed=seed,
                                  habit_days=habit_days)):  # fmt: skip
        if d["type"] != "purchase":
            continue
        if sessions.get(d["user"]) != d["session"]:
            sessions[d["user"]] = d["session"]
            per_user[d["user"]].append([])
        per_user[d["user"]][-1].append(d["item"])
    learner = RecencyLearner()
    for user, baskets in per_user.items():
        learner.add(*_stored(baskets, user))
    assert len(learner.shoppers) >= MIN_SHOPPERS
    return learner.weight()


def test_a_shop_whose_habits_change_learns_to_follow_recent_baskets() -> None:
    assert (_learned(habit_days=30, seed=4) or 0.0) >= 0.5  # a habit lasts about a month


def test_a_shop_whose_habits_last_keeps_frequency() -> None:
    """No weight beats frequency by more than chance: frequency is kept."""
    assert _learned(habit_days=0, seed=4) == 0.0


def test_too_few_shoppers_learn_nothing_and_bad_values_are_skipped() -> None:
    learner = RecencyLearner()
    baskets, values = _stored([["a", "b"], ["a"], ["a", "b"]])
    learner.add(baskets, [*values, b"1|9", b"x|y|z|w|v|u", b"2|9|1|2|nan?|3"])
    learner.add(2, values)  # two baskets: the state before the last holds one, too little
    assert len(learner.shoppers) == 1 and learner.weight() is None
    [(last, rows)] = learner.shoppers
    assert last == 2 and len(rows) == 2


def test_learning_ranks_a_rails_length() -> None:
    """Recall is measured at a rail's length: items past it never count."""
    learner = RecencyLearner()
    many = [f"i{n:02d}" for n in range(LEARN_K + 5)]
    # the last basket holds only the item ranked last by either rate
    learner.add(*_stored([many, many[:-1], many[:-1], [many[-1]]]))
    [(_, rows)] = learner.shoppers
    assert RecencyLearner._recall(0.0, 1, rows) == 0.0
    assert RecencyLearner._recall(1.0, 1, rows) == 0.0
