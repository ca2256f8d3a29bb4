"""A seeded synthetic event stream: Zipf items, shopper sessions, view -> cart -> purchase funnels.

Used by tests and the benches (``bench/processor.py``, ...). Same seed, same events.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from segmenter.event import Event

__all__ = ["CATEGORIES", "Shop", "events"]

CATEGORIES = ("grocery", "electronics", "fashion", "home", "beauty", "sports", "toys", "books")


@dataclass(frozen=True, slots=True)
class Shop:
    """A catalogue of ``items`` with Zipf(s) popularity, and a population of shoppers."""

    items: int = 5000
    shoppers: int = 20_000
    zipf_s: float = 1.1
    experiments: tuple[str, ...] = ("rail-ranker",)

    def item(self, n: int) -> tuple[str, str, float]:
        """Item id, category and price of item ``n``."""
        rng = random.Random(n)
        return f"sku-{n}", CATEGORIES[n % len(CATEGORIES)], round(rng.uniform(2, 300), 2)


def _zipf_cdf(n: int, s: float) -> list[float]:
    weights = list(itertools.accumulate(1 / (k**s) for k in range(1, n + 1)))
    return [w / weights[-1] for w in weights]


def events(count: int, *, seed: int = 1, start_ms: int = 1_700_000_000_000,
           shop: Shop | None = None, step_ms: int = 50) -> Iterator[Event]:  # fmt: skip
    """``count`` events in arrival order: sessions of 1-12 views, some carts, some purchases."""
    shop = shop or Shop()
    rng = random.Random(seed)
    cdf = _zipf_cdf(shop.items, shop.zipf_s)
    now, made, serial = start_ms, 0, 0
    while made < count:
        user = f"shopper{rng.randrange(shop.shoppers):07d}"
        session = f"s{rng.randrange(10**9)}"
        if shop.experiments and rng.random() < 0.3:
            exp = rng.choice(shop.experiments)
            day = now // 86_400_000
            yield Event(f"x-{user}-{exp}-{day}", "exposure", user, now, session=session,
                        experiment=exp, variant=rng.choice(("control", "b")))  # fmt: skip
            made += 1
        for _ in range(rng.randint(1, 12)):
            if made >= count:
                return
            n = bisect.bisect_left(cdf, rng.random())
            sku, cat, price = shop.item(n)
            kind = rng.choices(("view", "add_to_cart", "purchase", "search"), (80, 12, 4, 4))[0]
            qty = rng.randint(1, 3) if kind in ("add_to_cart", "purchase") else 1
            serial += 1
            item = "" if kind == "search" else sku
            yield Event(f"e{seed}-{serial}", kind, user, now, item=item, category=cat,
                        price=price if item else 0.0, qty=qty, session=session)  # fmt: skip
            made += 1
            now += rng.randint(0, 2 * step_ms)
