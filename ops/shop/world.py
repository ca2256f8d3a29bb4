"""The simulated shop: a catalog, shoppers with category preferences, Zipf popularity.

Deterministic for a seed, so two demo runs see the same world.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["CATEGORIES", "Shopper", "World"]

CATEGORIES = ("dairy", "bakery", "produce", "snacks", "drinks", "frozen", "baby", "pets",
              "household", "beauty", "electronics", "toys")  # fmt: skip
DURABLE = frozenset({"electronics", "toys", "household"})


@dataclass
class Shopper:
    """One returning or new shopper: a cookie jar and what they like."""

    number: int
    likes: tuple[str, ...]
    cookies: dict[str, str] = field(default_factory=dict)
    variants: dict[str, str] = field(default_factory=dict)
    cart: list[str] = field(default_factory=list)


@dataclass
class World:
    """Catalog and shoppers."""

    seed: int = 7
    skus: int = 400
    shoppers: int = 1500
    rng: random.Random = field(init=False)
    catalog: list[dict[str, object]] = field(init=False)
    by_category: dict[str, list[str]] = field(init=False)
    people: list[Shopper] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.catalog, self.by_category = [], {c: [] for c in CATEGORIES}
        for i in range(self.skus):
            cat = CATEGORIES[i % len(CATEGORIES)]
            sku = f"SKU-{i:04d}"
            price = round(self.rng.uniform(1, 30) * (8 if cat in DURABLE else 1), 2)
            self.catalog.append(
                {
                    "sku": sku,
                    "category": cat,
                    "price": price,
                    "stock": 500,
                    "durable": cat in DURABLE,
                }
            )
            self.by_category[cat].append(sku)
        self.people = [
            Shopper(n, tuple(self.rng.sample(CATEGORIES, 3))) for n in range(self.shoppers)
        ]

    def price(self, sku: str) -> float:
        return float(self.catalog[int(sku.split("-")[1])]["price"])  # type: ignore[arg-type]

    def category(self, sku: str) -> str:
        return str(self.catalog[int(sku.split("-")[1])]["category"])

    def pick_item(self, shopper: Shopper) -> str:
        """Zipf-like: a liked category most of the time, low ranks far more often."""
        cat = (
            self.rng.choice(shopper.likes)
            if self.rng.random() < 0.8
            else self.rng.choice(CATEGORIES)
        )
        items = self.by_category[cat]
        rank = min(int(self.rng.paretovariate(1.2)) - 1, len(items) - 1)
        return items[rank]

    def pick_shopper(self) -> Shopper:
        """Returning shoppers dominate: a Zipf draw over the population."""
        n = min(int(self.rng.paretovariate(0.8)) - 1, len(self.people) - 1)
        return self.people[(n * 7919) % len(self.people)]
