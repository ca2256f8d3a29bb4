"""Per-shopper features: the pure operator ``apply(state, events) -> state`` and its diff.

Events are applied one at a time in stream order, and every float is stored with ``repr``
(exact round trip), so the result never depends on how the events were cut into batches:
a processor restarted after a crash, or a rebuild from the archive, computes identical values.

    cart {}  + add_to_cart(sku-1, qty 2) + purchase(sku-1)
        ->  cart {}, bought {sku-1: 1|ts|ts|1|1.0|1}, baskets 1

An ``identify`` event merges the anonymous shopper's features (as loaded with the batch) into
the customer's: counts add up, carts add up, purchases and affinities combine, the most recent
views come first, the earliest exposure to each experiment is kept; and the anonymous id is
kept as ``ab``, the customer's A/B unit (the origin assigns a signed-in customer's variants by
the anonymous id they signed in from, so variants do not move at login). The merge is part
of the customer's state written with its last applied stream id, so it happens exactly once.

A purchase keeps, per item, the quantity, the last and first purchase times, the number of
purchases (the origin's repurchase model reads the shopper's own interval from them), and the
item's basket-decayed frequency with the basket it was last updated at: each basket the
shopper buys multiplies every earlier basket's weight by ``PIF_DECAY_PER_BASKET`` (TIFU-KNN's
personal item frequency), kept incrementally as ``score * decay ** (baskets - at)``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cache_keys import hash_segment
from segmenter.event import Event
from segmenter.schema import (
    AFFINITY_MAX,
    BOUGHT_MAX,
    PIF_DECAY_PER_BASKET,
    RECENT_MAX,
    SESSION_GAP_MS,
)
from segmenter.segments import SegmentRules, segment

__all__ = [
    "AFFINITY_WEIGHTS",
    "Bought",
    "FeatureParams",
    "ShopperState",
    "apply",
    "bought_value",
    "diff",
    "merge",
    "profile",
]

# How much one event adds to its category's affinity, before decay.
AFFINITY_WEIGHTS = {"view": 1.0, "search": 0.5, "add_to_cart": 3.0, "purchase": 5.0}


Bought = tuple[int, int, int, int, float, int]


@dataclass(frozen=True, slots=True)
class FeatureParams:
    half_life_ms: int
    rules: SegmentRules
    segment_key: bytes


@dataclass(slots=True)
class ShopperState:
    """One shopper's features as stored (see ``segmenter.schema`` for the formats)."""

    last_id: str = ""
    scalars: dict[str, str] = field(default_factory=dict)
    recent: list[str] = field(default_factory=list)
    cart: dict[str, int] = field(default_factory=dict)
    # item -> (quantity, last purchase ms, first purchase ms, purchases, decayed frequency,
    # the basket it was decayed to)
    bought: dict[str, Bought] = field(default_factory=dict)
    aff: dict[str, tuple[float, int]] = field(default_factory=dict)
    exp: dict[str, tuple[str, int]] = field(default_factory=dict)

    def copy(self) -> ShopperState:
        # The constructor, not ``dataclasses.replace`` (which walks the fields): once per
        # shopper per batch.
        return ShopperState(self.last_id, dict(self.scalars), list(self.recent), dict(self.cart),
                            dict(self.bought), dict(self.aff), dict(self.exp))  # fmt: skip

    def num(self, name: str) -> float:
        return float(self.scalars.get(name, 0))


def _decay(score: float, dt_ms: int, half_life_ms: int) -> float:
    return score * 0.5 ** (dt_ms / half_life_ms) if dt_ms > 0 else score


def _add_affinity(s: ShopperState, ev: Event, half_life_ms: int) -> None:
    w = AFFINITY_WEIGHTS.get(ev.type, 0.0)
    if not ev.category or w == 0.0:
        return
    score, as_of = s.aff.get(ev.category, (0.0, ev.ts))
    if ev.ts >= as_of:
        s.aff[ev.category] = (_decay(score, ev.ts - as_of, half_life_ms) + w, ev.ts)
    else:  # out of order: add the event's contribution decayed to as_of
        s.aff[ev.category] = (score + _decay(w, as_of - ev.ts, half_life_ms), as_of)
    if len(s.aff) > AFFINITY_MAX:
        weakest = min(
            s.aff, key=lambda c: (_decay(s.aff[c][0], ev.ts - s.aff[c][1], half_life_ms), c)
        )
        del s.aff[weakest]


def _apply_item(s: ShopperState, ev: Event) -> None:
    if ev.type == "view":
        if ev.item in s.recent:
            s.recent.remove(ev.item)
        s.recent.insert(0, ev.item)
        del s.recent[RECENT_MAX:]
    elif ev.type == "add_to_cart":
        s.cart[ev.item] = s.cart.get(ev.item, 0) + ev.qty
    elif ev.type == "remove_from_cart":
        left = s.cart.get(ev.item, 0) - ev.qty
        if left > 0:
            s.cart[ev.item] = left
        else:
            s.cart.pop(ev.item, None)
    elif ev.type == "purchase":
        s.cart.pop(ev.item, None)
        basket = _basket(s, ev)
        count, last, first, times, pif, at = s.bought.get(ev.item, (0, 0, ev.ts, 0, 0.0, 0))
        if at != basket or times == 0:  # once per basket, however many lines it takes
            pif, at = pif * PIF_DECAY_PER_BASKET ** (basket - at) + 1.0, basket
        s.bought[ev.item] = (count + ev.qty, max(last, ev.ts), min(first, ev.ts), times + 1,
                             pif, at)  # fmt: skip
        if len(s.bought) > BOUGHT_MAX:
            oldest = min(s.bought, key=lambda i: (s.bought[i][1], i))
            del s.bought[oldest]


def _basket(s: ShopperState, ev: Event) -> int:
    """The shopper's basket number for a purchase: a purchase in another session (or, without
    a session, more than a session gap after the last) starts the next basket."""
    key = ev.session or f"@{ev.ts // SESSION_GAP_MS}"
    baskets = int(s.scalars.get("baskets", 0))
    if s.scalars.get("bkey") != key or not baskets:
        baskets += 1
        s.scalars["baskets"], s.scalars["bkey"] = str(baskets), key
    return baskets


def _apply_scalars(s: ShopperState, evs: list[Event]) -> None:
    """First/last seen, counts and the price sum, folded over ``evs`` in order (the price sum
    adds one float at a time, as event by event would: ``repr`` round-trips exactly)."""
    sc = s.scalars
    times = [ev.ts for ev in evs]
    first = min(int(sc.get("first_ms", times[0])), *times)
    last = max(int(sc.get("last_ms", times[0])), *times)
    sc["first_ms"], sc["last_ms"] = str(first), str(last)
    sc["events"] = str(int(sc.get("events", 0)) + len(evs))
    orders = sum(1 for ev in evs if ev.type == "purchase")
    if orders:
        sc["orders"] = str(int(sc.get("orders", 0)) + orders)
    priced = [ev.price for ev in evs if ev.price > 0 and ev.type in ("view", "purchase")]
    if priced:
        psum = float(sc.get("psum", 0.0))
        for price in priced:
            psum += price
        sc["psum"] = repr(psum)
        sc["pcnt"] = str(int(sc.get("pcnt", 0)) + len(priced))


def _apply_exposure(s: ShopperState, ev: Event) -> None:
    seen = s.exp.get(ev.experiment)
    if seen is None or ev.ts < seen[1]:
        s.exp[ev.experiment] = (seen[0] if seen else ev.variant, ev.ts)


def profile(s: ShopperState, half_life_ms: int) -> dict[str, Any]:
    """What segment rules see: counts, average price, top category (decayed to last event)."""
    now = int(s.num("last_ms"))
    top = max(
        s.aff, key=lambda c: (_decay(s.aff[c][0], now - s.aff[c][1], half_life_ms), c), default=""
    )
    pcnt = s.num("pcnt")
    return {
        "events": s.num("events"),
        "orders": s.num("orders"),
        "cart_items": sum(s.cart.values()),
        "avg_price": s.num("psum") / pcnt if pcnt else 0.0,
        "days_active": (now - s.num("first_ms")) / 86_400_000,
        "top_category": top,
    }


@functools.lru_cache(maxsize=4096)
def _hseg(name: str, key: bytes) -> str:
    return str(hash_segment(name, key))


def _merge_scalars(sc: dict[str, str], other: dict[str, str]) -> None:
    for name, pick in (("first_ms", min), ("last_ms", max)):
        if name in other:
            sc[name] = str(pick(int(other[name]), int(sc.get(name, other[name]))))
    for name in ("events", "orders", "pcnt"):
        if name in other:
            sc[name] = str(int(sc.get(name, 0)) + int(other[name]))
    if "psum" in other:
        sc["psum"] = repr(float(sc.get("psum", 0.0)) + float(other["psum"]))


def _merge_bought(s: ShopperState, other: ShopperState) -> None:
    """Purchases add up; the two shoppers' baskets make one sequence, the shopper who bought
    last having bought the later baskets: its basket numbers (and items' ``at``) move up by
    the other's basket count, so every item's basket-decayed frequency keeps its weight at
    the merged latest basket, and an item both bought sums both decayed frequencies."""
    last_s = max((b[1] for b in s.bought.values()), default=0)
    last_o = max((b[1] for b in other.bought.values()), default=0)
    n_s, n_o = int(s.scalars.get("baskets", 0)), int(other.scalars.get("baskets", 0))
    other_later = last_o >= last_s
    shift_s, shift_o = (0, n_s) if other_later else (n_o, 0)
    if shift_s:
        s.bought = {i: (*b[:5], b[5] + shift_s) for i, b in s.bought.items()}
    for item, (count, last, first, times, pif, at0) in other.bought.items():
        at = at0 + shift_o
        if item not in s.bought:
            s.bought[item] = (count, last, first, times, pif, at)
            continue
        c0, l0, f0, t0, p0, a0 = s.bought[item]
        top = max(at, a0)
        merged = p0 * PIF_DECAY_PER_BASKET ** (top - a0) + pif * PIF_DECAY_PER_BASKET ** (top - at)
        s.bought[item] = (c0 + count, max(l0, last), min(f0, first), t0 + times, merged, top)
    if n_o:
        s.scalars["baskets"] = str(n_s + n_o)
        later = other.scalars if other_later or not n_s else s.scalars
        if "bkey" in later:
            s.scalars["bkey"] = later["bkey"]
    while len(s.bought) > BOUGHT_MAX:
        del s.bought[min(s.bought, key=lambda i: (s.bought[i][1], i))]


def _merge_affinity(s: ShopperState, other: ShopperState, half_life_ms: int) -> None:
    for cat, (score, as_of) in other.aff.items():
        mine, mine_as_of = s.aff.get(cat, (0.0, as_of))
        at = max(as_of, mine_as_of)
        s.aff[cat] = (
            _decay(mine, at - mine_as_of, half_life_ms) + _decay(score, at - as_of, half_life_ms),
            at,
        )
    while len(s.aff) > AFFINITY_MAX:
        now = max(a for _, a in s.aff.values())
        del s.aff[
            min(s.aff, key=lambda c: (_decay(s.aff[c][0], now - s.aff[c][1], half_life_ms), c))
        ]


def merge(s: ShopperState, other: ShopperState, half_life_ms: int) -> None:
    """Fold ``other`` (an anonymous shopper signing in) into ``s`` (the customer), in place.

    recent ["b"] (customer, last seen earlier) + ["a", "b"] (anonymous, later) -> ["a", "b"]
    """
    newer_first = other.num("last_ms") >= s.num("last_ms")
    first, then = (other.recent, s.recent) if newer_first else (s.recent, other.recent)
    s.recent = list(dict.fromkeys([*first, *then]))[:RECENT_MAX]
    _merge_scalars(s.scalars, other.scalars)
    for item, qty in other.cart.items():
        s.cart[item] = s.cart.get(item, 0) + qty
    _merge_bought(s, other)
    _merge_affinity(s, other, half_life_ms)
    for key, (variant, first_ms) in other.exp.items():
        if key not in s.exp or first_ms < s.exp[key][1]:
            s.exp[key] = (variant, first_ms)


def apply(
    state: ShopperState,
    events: Iterable[tuple[str, Event]],
    p: FeatureParams,
    *,
    linked: Mapping[str, ShopperState] | None = None,
) -> ShopperState:
    """Fold ``(stream id, event)`` pairs, in stream order, into a new state; ``linked`` holds
    the anonymous shoppers that the identify events among them merge in."""
    s = state.copy()
    evs: list[Event] = []
    for stream_id, ev in events:
        s.last_id = stream_id
        if ev.type == "identify":
            anon = (linked or {}).get(ev.anon)
            if anon is not None:
                merge(s, anon, p.half_life_ms)
            s.scalars["ab"] = ev.anon
            continue
        evs.append(ev)
        _add_affinity(s, ev, p.half_life_ms)
        if ev.item:
            _apply_item(s, ev)
        if ev.type == "exposure":
            _apply_exposure(s, ev)
    if evs:
        _apply_scalars(s, evs)
    if s.last_id != state.last_id:
        name = segment(profile(s, p.half_life_ms), p.rules)
        s.scalars["seg"] = name
        s.scalars["hseg"] = _hseg(name, p.segment_key)
    return s


def _hash_diff(old: dict[str, Any], new: dict[str, Any], fmt: Any) -> tuple[list[str], list[str]]:
    if old == new:  # most batches leave purchases and experiments alone: one C comparison
        return [], []
    sets: list[str] = []
    for k, v in new.items():
        if old.get(k) != v:
            sets += (k, fmt(v))
    return sets, [k for k in old if k not in new]


def _pair(v: tuple[Any, ...]) -> str:
    return "|".join(repr(x) if isinstance(x, float) else str(x) for x in v)


def diff(old: ShopperState, new: ShopperState) -> list[Any]:
    """The writes that turn ``old`` into ``new``: [hash diffs by key index, recent or None].

    Key indexes follow ``Keys.shopper_keys``: 0 f, 1 recent, 2 cart, 3 bought, 4 aff, 5 exp.
    """
    scalars = {**new.scalars, "last_id": new.last_id}
    old_scalars = {**old.scalars, "last_id": old.last_id}
    hashes = [
        (0, *_hash_diff(old_scalars, scalars, str)),
        (2, *_hash_diff(old.cart, new.cart, str)),
        (3, *_hash_diff(old.bought, new.bought, _pair)),
        (4, *_hash_diff(old.aff, new.aff, _pair)),
        (5, *_hash_diff(old.exp, new.exp, _pair)),
    ]
    changed = [list(h) for h in hashes if h[1] or h[2]]
    return [changed, new.recent if new.recent != old.recent else None]


def bought_value(v: str, baskets: int = 0) -> Bought:
    """ "3|1700000900000|1700000000000|2|1.9|4" -> (3, 1700000900000, 1700000000000, 2, 1.9, 4).

    Older values read as their purchases undecayed at the shopper's current basket
    ``baskets``: "count|last|first|purchases", or "count|last" (bought once)."""
    parts = v.split("|")
    if len(parts) == 6:
        return (int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]), float(parts[4]),
                int(parts[5]))  # fmt: skip
    nums = [int(x) for x in parts]
    if len(nums) == 2:
        return (nums[0], nums[1], nums[1], 1, 1.0, baskets)
    count, last, first, times = nums
    return (count, last, first, times, float(times), baskets)


def from_redis(raw: list[Any]) -> ShopperState:
    """Parse the reply of the shopper read script (six HGETALL/LRANGE replies as flat lists)."""
    f, recent, cart, bought, aff, exp = (
        [x.decode() if isinstance(x, bytes) else x for x in part] for part in raw
    )

    def pairs(flat: list[str]) -> Iterable[tuple[str, str]]:
        return zip(flat[::2], flat[1::2], strict=True)

    scalars = dict(pairs(f))
    s = ShopperState(last_id=scalars.pop("last_id", ""), scalars=scalars, recent=recent)
    s.cart = {k: int(v) for k, v in pairs(cart)}
    baskets = int(scalars.get("baskets", 0))
    for k, v in pairs(bought):
        s.bought[k] = bought_value(v, baskets)
    for k, v in pairs(aff):
        a, b = v.split("|")
        s.aff[k] = (float(a), int(b))
    for k, v in pairs(exp):
        a, b = v.split("|")
        s.exp[k] = (a, int(b))
    return s
