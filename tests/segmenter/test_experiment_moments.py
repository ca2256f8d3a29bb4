"""Per-shopper experiment moments: exact, capped, and independent of batch boundaries."""

from __future__ import annotations

import random
from collections import Counter

from segmenter import aggregates
from segmenter.aggregates import Entry, PartitionParams, PartitionState
from segmenter.event import Event

T0 = 1_700_000_000_000
CAP = 5_000  # cents: low, so that some shoppers' sums are capped


def _events(rng: random.Random) -> list[Event]:
    evs = []
    for n in range(60):
        user = f"u{n}"
        t = T0 + n
        if rng.random() < 0.3:  # a purchase before the exposure: never counted
            evs.append(Event(f"pre{n}", "purchase", user, t, item="i", price=9.99, qty=1))
        evs.append(Event(f"x{n}", "exposure", user, t + 10, experiment="e", variant=f"v{n % 2}"))
        for k in range(rng.randrange(4)):
            price, qty = round(rng.uniform(1, 40), 2), rng.randrange(1, 3)
            evs.append(Event(f"p{n}-{k}", "purchase", user, t + 20 + k, "i", "", price, qty))
        if rng.random() < 0.5:
            evs.append(Event(f"a{n}", "add_to_cart", user, t + 15, item="i"))
            evs.append(Event(f"b{n}", "add_to_cart", user, t + 16, item="i"))
    return sorted(evs, key=lambda ev: ev.ts)


def _expected(evs: list[Event]) -> Counter[str]:
    """The moments computed directly from each shopper's totals (the variance is over shoppers)."""
    first = {ev.user: (ev.variant, ev.ts) for ev in evs if ev.type == "exposure"}
    rev: Counter[str] = Counter()
    orders: Counter[str] = Counter()
    carted: set[str] = set()
    for ev in evs:
        if ev.user in first and ev.ts >= first[ev.user][1]:
            if ev.type == "purchase":
                rev[ev.user] += round(ev.price * 100) * ev.qty
                orders[ev.user] += 1
            elif ev.type == "add_to_cart":
                carted.add(ev.user)
    out: Counter[str] = Counter()
    for user, (v, _) in first.items():
        capped, o = min(rev[user], CAP), orders[user]
        out[f"x:{v}"] += 1
        out[f"e:{v}"] += 1  # one exposure event each: the guardrails' denominator
        out[f"c:{v}"] += o > 0
        out[f"a:{v}"] += user in carted
        out[f"o:{v}"] += o
        out[f"r:{v}"] += rev[user]
        out[f"rc:{v}"] += capped
        out[f"rq:{v}"] += capped * capped
        out[f"oq:{v}"] += o * o
        out[f"ro:{v}"] += capped * o
    return +out


def test_moments_match_per_shopper_totals_for_any_batching() -> None:
    rng = random.Random(7)
    evs = _events(rng)
    entries = [Entry(f"{T0}-{i}", b"", ev) for i, ev in enumerate(evs)]
    params = PartitionParams(60_000, 60_000, revenue_cap_cents=CAP)
    want = _expected(evs)
    assert any(k.startswith("rc:") for k in want) and want["rc:v0"] < want["r:v0"]  # capped
    for split in (1, 7, len(entries)):
        st, total = PartitionState(), Counter[str]()
        for i in range(0, len(entries), split):
            batch = entries[max(0, i - 3) : i + split]  # overlapping: redelivered entries
            st, fx = aggregates.apply(st, batch, frozenset(), params)
            st.exposed = {**st.exposed}  # what the store keeps between batches
            for counts in fx.exp.values():
                total.update(counts)
        got = Counter({k: v for k, v in total.items() if not k.startswith(("d:", "k:"))})
        assert got == want, split
        days = Counter({k.split(":", 2)[2]: v for k, v in total.items() if k.startswith("d:")})
        assert days == Counter({k: v for k, v in want.items() if k[:2] in ("x:", "c:")})
