"""A shop's purchase history as an events file (JSON Lines of Event v1), grocery- or fashion-like.

    grocery  baskets of ~10 items every few days: personal staples bought again every 1-4
             weeks (each shopper their own cycle, with jitter), category affinities, items that
             go together, seasonal items, new items appearing, a long tail of one-off buys,
             favourites bought again without a cycle; orders every 3-30 days, shoppers joining
             all along (many with a few orders only): like Instacart, about 60% of a basket's
             items were bought before by the same shopper. Habits last for good unless
             ``habit_days`` is set: then a staple is given up after about that many days for a
             new one, and favourites come from the purchases of that many recent days
    fashion  browsing sessions inside one style at a time, a purchase now and then of an item
             viewed in the same or the previous session, rarely the same item twice

What ``p13n evaluate`` and ``bench/quality.py`` replay. Same seed and shape, same file.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

__all__ = [
    "HABIT_DAYS",
    "KINDS",
    "Ceiling",
    "HistoryShape",
    "fashion",
    "grocery",
    "grocery_ceiling",
    "write",
]

DAY_MS = 86_400_000
START_MS = 1_767_225_600_000  # 2026-01-01
GROCERY_CATEGORIES = ("dairy", "bakery", "produce", "meat", "snacks", "drinks", "frozen",
                      "pantry", "baby", "pets", "household", "beauty")  # fmt: skip
# Share of a basket's non-staple picks that repeat one of the shopper's earlier purchases
# (drawn by how often they bought it): favourites bought again without a cycle. With the
# staples, about 60% of a basket's items were bought before, as on Instacart.
REBUY = 0.4
# How long a habit lasts in the changing grocery shop (``HistoryShape.habit_days``; the default
# shape keeps habits for good): about two months.
HABIT_DAYS = 60.0
FASHION_CATEGORIES = ("tops", "dresses", "jeans", "shoes", "bags", "jackets", "knitwear")


@dataclass(frozen=True, slots=True)
class HistoryShape:
    """How big a history is."""

    shoppers: int = 300
    items: int = 3000
    days: int = 120
    seed: int = 11
    # grocery only. 0: habits last (staples for good, favourites drawn from every earlier
    # purchase); above 0: habits change, each staple is given up after about this many days
    # for a new one, and favourites come from the purchases of the last this many days
    habit_days: float = 0.0


def _cdf(n: int, s: float = 1.05) -> list[float]:
    acc = list(itertools.accumulate(1 / (k**s) for k in range(1, n + 1)))
    return [w / acc[-1] for w in acc]


def _zipf(rng: random.Random, pool: list[str], cdf: list[float]) -> str:
    return pool[min(bisect.bisect_left(cdf, rng.random()), len(pool) - 1)]


class _Writer:
    """Event documents with unique ids; a session per visit."""

    def __init__(self, prices: dict[str, float], categories: dict[str, str]) -> None:
        self.prices, self.categories, self.serial = prices, categories, itertools.count()

    def doc(self, kind: str, user: str, item: str, ts: int, session: str) -> dict[str, Any]:
        return {"v": 1, "event_id": f"h{next(self.serial)}", "type": kind, "user": user,
                "item": item, "category": self.categories[item], "price": self.prices[item],
                "ts": ts, "session": session}  # fmt: skip


def _catalog(rng: random.Random, n: int, cats: tuple[str, ...], lo: float, hi: float) -> tuple[
    dict[str, list[str]], dict[str, float], dict[str, str]
]:  # fmt: skip
    by_cat: dict[str, list[str]] = {c: [] for c in cats}
    prices, categories = {}, {}
    for i in range(n):
        cat = cats[i % len(cats)]
        sku = f"{cat[:3]}-{i:05d}"
        by_cat[cat].append(sku)
        prices[sku], categories[sku] = round(rng.uniform(lo, hi), 2), cat
    return by_cat, prices, categories


class _Grocery:
    """The grocery shop's catalog and its shoppers' hidden habits, drawn from one seeded
    generator in a fixed order (same seed, same file)."""

    def __init__(self, shape: HistoryShape) -> None:
        self.shape, self.rng = shape, random.Random(shape.seed)
        rng = self.rng
        self.by_cat, prices, categories = _catalog(rng, shape.items, GROCERY_CATEGORIES, 0.5, 25)
        self.cdf = {c: _cdf(len(v)) for c, v in self.by_cat.items()}
        skus = list(prices)
        self.partner = {s: rng.choice(skus) for s in skus}  # goes with (pasta -> sauce)
        self.season_of = {s: rng.randrange(shape.days) for s in rng.sample(skus, len(skus) // 20)}
        self.born = {s: rng.randrange(shape.days) for s in rng.sample(skus, len(skus) // 20)}
        self.writer = _Writer(prices, categories)

    def available(self, sku: str, day: int) -> bool:
        if sku in self.season_of and abs(day - self.season_of[sku]) > 21:
            return False
        return self.born.get(sku, 0) <= day

    def shopper(self) -> tuple[_Habits, float, float]:
        """The next shopper's habits, days between their orders and the day of their first."""
        rng, by_cat, cdf = self.rng, self.by_cat, self.cdf
        likes = tuple(rng.sample(GROCERY_CATEGORIES, 4))
        staples = {}
        for _ in range(rng.randint(6, 16)):
            cat = rng.choice(likes)
            staples[_zipf(rng, by_cat[cat], cdf[cat])] = rng.uniform(7, 28)  # cycle in days
        due = {s: rng.uniform(0, c) for s, c in staples.items()}
        # days between orders: log-uniform over 3-30 (Instacart's median is a week, capped
        # at 30), and shoppers join all along: many have only a few orders
        gap = math.exp(rng.uniform(math.log(3), math.log(30)))
        day = rng.uniform(0, self.shape.days * 0.8) if rng.random() < 0.5 else rng.uniform(0, gap)
        return _Habits(likes, staples, due, []), gap, day

    def basket(self, rng: random.Random, h: _Habits, day: float) -> list[str]:
        """One order on ``day``: the staples due, then picks up to the basket's size (``h.due``
        moves on; ``h.usual`` does not)."""
        basket = _staples(rng, day, h.staples, h.due, self.available)
        size = max(3, round(rng.gauss(10, 3)))
        usual = h.usual
        if self.shape.habit_days:
            usual = usual[bisect.bisect_left(h.when, day - self.shape.habit_days) :]
        while len(basket) < size:
            if usual and rng.random() < REBUY:  # a favourite again, no cycle to it
                sku = rng.choice(usual)
            else:
                cat = rng.choice(h.likes) if rng.random() < 0.75 else rng.choice(GROCERY_CATEGORIES)
                sku = _zipf(rng, self.by_cat[cat], self.cdf[cat])
            if self.available(sku, int(day)) and sku not in basket:
                basket.append(sku)
            if rng.random() < 0.15 and self.partner[sku] not in basket:
                basket.append(self.partner[sku])
        return basket

    def _change(self, h: _Habits, since: float, day: float) -> None:
        """Habits given up between days ``since`` and ``day``, each for a new staple from a
        liked category."""
        rng = self.rng
        for sku in list(h.staples):
            if rng.random() < (day - since) / self.shape.habit_days:
                del h.staples[sku], h.due[sku]
                cat = rng.choice(h.likes)
                new = _zipf(rng, self.by_cat[cat], self.cdf[cat])
                if new not in h.staples:  # first needed within one cycle from now
                    h.staples[new] = cycle = rng.uniform(7, 28)
                    h.due[new] = day + rng.uniform(0, cycle)

    def orders(self) -> Iterator[tuple[str, list[tuple[float, list[str], _Habits]]]]:
        """Per shopper, their orders: (day, basket, the habits just before it)."""
        for n in range(self.shape.shoppers):
            h, gap, day = self.shopper()
            out: list[tuple[float, list[str], _Habits]] = []
            while day < self.shape.days:
                if self.shape.habit_days and out:
                    self._change(h, out[-1][0], day)
                before = h.copy()
                basket = self.basket(self.rng, h, day)
                h.usual.extend(basket)
                h.when.extend(day for _ in basket)
                out.append((day, basket, before))
                day += gap * self.rng.uniform(0.6, 1.4)
            yield f"g{n:05d}", out


@dataclass(slots=True)
class _Habits:
    """What a grocery shopper likes and has bought (``usual``: once per purchase, on the days
    in ``when``)."""

    likes: tuple[str, ...]
    staples: dict[str, float]  # item -> cycle in days
    due: dict[str, float]  # item -> the day it is needed again
    usual: list[str]
    when: list[float] = field(default_factory=list)

    def copy(self) -> _Habits:
        """What changes with the orders copied."""
        return _Habits(self.likes, dict(self.staples), dict(self.due), list(self.usual),
                       list(self.when))  # fmt: skip


def grocery(shape: HistoryShape = HistoryShape()) -> Iterator[dict[str, Any]]:
    """Grocery-like events, shopper after shopper (the file is sorted by ``write``)."""
    shop = _Grocery(shape)
    w = shop.writer
    for user, orders in shop.orders():
        for visit, (day, basket, _) in enumerate(orders):
            ts = START_MS + int(day * DAY_MS)
            session = f"{user}-{visit}"
            for i, sku in enumerate(basket):
                yield w.doc("view", user, sku, ts + i * 20_000, session)
                yield w.doc("purchase", user, sku, ts + i * 20_000 + 5_000, session)


@dataclass(frozen=True, slots=True)
class Ceiling:
    """How well anything can do on the grocery shop's last baskets (``grocery_ceiling``)."""

    recall: float  # ranking by each item's chance, known from the hidden habits
    reorder_recall: float  # the shopper's own items by purchase count, then recency
    shoppers: int


def grocery_ceiling(shape: HistoryShape = HistoryShape(), k: int = 20, draws: int = 2000,
                    seed: int = 0) -> Ceiling:  # fmt: skip
    """Recall@k of an oracle on each shopper's last basket (shoppers with an earlier one, as
    ``p13n evaluate --split last-basket`` scores): it knows what no model can (the shopper's
    liked categories, staples, cycles and due days just before that basket) and ranks items
    by their chance to be in it, estimated from ``draws`` baskets drawn from those habits.
    Ranking by that chance maximizes the expected hits; no model of the history knows more,
    so (up to sampling error, and recall weighing small baskets more) none does better. The
    reorder baseline is beside it, on the same baskets, ranked as ``p13n evaluate`` ranks it."""
    shop, rng = _Grocery(shape), random.Random(seed)
    oracle = reorder = 0.0
    scored = 0
    for _, orders in shop.orders():
        if len(orders) < 2:
            continue
        day, truth, before = orders[-1]
        chance: Counter[str] = Counter()
        for _ in range(draws):
            chance.update(shop.basket(rng, replace(before, due=dict(before.due)), day))
        count: Counter[str] = Counter(before.usual)
        # recency as the events file orders it: by order, then by place in the basket
        last = {sku: (i, j) for i, (_, b, _) in enumerate(orders[:-1]) for j, sku in enumerate(b)}
        mine = sorted(count, key=lambda i: (-count[i], (-last[i][0], -last[i][1]), i))[:k]
        best = sorted(chance, key=lambda i: (-chance[i], i))[:k]
        oracle += len(set(truth).intersection(best)) / len(truth)
        reorder += len(set(truth).intersection(mine)) / len(truth)
        scored += 1
    n = max(scored, 1)
    return Ceiling(oracle / n, reorder / n, scored)


def _staples(
    rng: random.Random, day: float, staples: dict[str, float], due: dict[str, float],
    available: Callable[[str, int], bool],
) -> list[str]:  # fmt: skip
    """The staples due by ``day`` (most of them: one is forgotten now and then)."""
    basket = []
    for sku, cycle in staples.items():
        if day >= due[sku] - 1.5 and rng.random() < 0.85 and available(sku, int(day)):
            basket.append(sku)
            due[sku] = day + cycle * rng.uniform(0.8, 1.2)
    return basket


def fashion(shape: HistoryShape = HistoryShape()) -> Iterator[dict[str, Any]]:
    """Fashion-like events: style clusters, co-viewing, rare repurchase."""
    rng = random.Random(shape.seed)
    _, prices, categories = _catalog(rng, shape.items, FASHION_CATEGORIES, 15, 250)
    skus = list(prices)
    rng.shuffle(skus)
    styles = [skus[i : i + 40] for i in range(0, len(skus), 40)]
    cdf = _cdf(40, 0.9)
    w = _Writer(prices, categories)
    for n in range(shape.shoppers):
        user = f"f{n:05d}"
        mine = rng.sample(range(len(styles)), 3)
        style = rng.choice(mine)
        day, visit, last_seen = rng.uniform(0, 5), 0, list[str]()
        while day < shape.days:
            if rng.random() < 0.3:
                style = rng.choice(mine)
                last_seen = []
            ts, session = START_MS + int(day * DAY_MS), f"{user}-{visit}"
            seen = [_zipf(rng, styles[style], cdf) for _ in range(rng.randint(3, 8))]
            for i, sku in enumerate(seen):
                yield w.doc("view", user, sku, ts + i * 30_000, session)
            if rng.random() < 0.35:
                bought = rng.choice(seen + last_seen)
                yield w.doc("purchase", user, bought, ts + len(seen) * 30_000, session)
            last_seen = seen
            visit += 1
            day += rng.uniform(1, 10)


KINDS = {"grocery": grocery, "fashion": fashion}


def write(out: IO[str] | Path, kind: str, shape: HistoryShape = HistoryShape()) -> int:
    """Write the ``kind`` history to ``out`` in event-time order; the number of events."""
    docs = sorted(KINDS[kind](shape), key=lambda d: (d["ts"], d["event_id"]))
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8") as f:
            return write(f, kind, shape)
    for doc in docs:
        out.write(json.dumps(doc, separators=(",", ":")) + "\n")
    return len(docs)
