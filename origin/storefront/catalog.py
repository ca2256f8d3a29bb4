"""What the storefront shows of the catalog: products with a display name, a price and a
picture, grouped by category.

The catalog (``Keys.catalog``) holds category, price and stock per sku, and the name and image
URL when the shop imported them (``p13n import catalog``); without a name, one is made from
the category and sku (``SKU-0042`` in ``dairy`` -> "Dairy 0042"), and without an image, a
placeholder is drawn (``/shop/img/<sku>.svg``).
One worker reads the whole catalog at most once per ``P13N_ITEM_CACHE_TTL_S`` (the pages
themselves are cached by the edge), and a page lists at most ``PAGE_ITEMS`` products.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from html import escape

from origin.catalog_records import CatalogEntry, decode_entry
from origin.state import AppState

__all__ = ["PAGE_ITEMS", "Product", "ShopCatalog", "placeholder_svg"]

PAGE_ITEMS = 48
_CACHE_KEY = "shop.catalog"


@dataclass(frozen=True, slots=True)
class Product:
    """One sku as the shop shows it."""

    sku: str
    category: str
    price: float
    in_stock: bool
    label: str = ""  # the catalog's name, when it has one
    image_url: str = ""

    @property
    def name(self) -> str:
        """The catalog's name, else ``SKU-0042`` in ``dairy`` -> ``Dairy 0042``."""
        if self.label:
            return self.label
        tail = self.sku.rsplit("-", 1)[-1]
        return f"{self.category.replace('-', ' ').replace('/', ' ').title()} {tail}"

    @property
    def picture(self) -> str:
        """The catalog's image URL, else the placeholder's."""
        return self.image_url or f"/shop/img/{self.sku}.svg"

    @property
    def price_text(self) -> str:
        return f"${self.price:,.2f}"


def _product(sku: str, entry: CatalogEntry) -> Product:
    return Product(sku, entry.category, entry.price, entry.in_stock, entry.name, entry.image_url)


@dataclass(frozen=True, slots=True)
class ShopCatalog:
    """One worker's snapshot of the catalog: products by sku and by category."""

    products: dict[str, Product]
    loaded_at: float

    @classmethod
    async def load(cls, state: AppState) -> ShopCatalog:
        """The cached snapshot, or a fresh read of the whole catalog (one round trip)."""
        now = state.clock()
        cached = state.extras.get(_CACHE_KEY)
        if (
            isinstance(cached, ShopCatalog)
            and now - cached.loaded_at < state.settings.item_cache_ttl_s
        ):
            return cached
        raw = await state.store.run("shop_catalog", state.store.client.hgetall(state.keys.catalog))
        products = {}
        for key, value in raw.items():
            entry = decode_entry(value)
            if entry is not None:
                sku = key.decode() if isinstance(key, bytes) else str(key)
                products[sku] = _product(sku, entry)
        fresh = cls(dict(sorted(products.items())), now)
        state.extras[_CACHE_KEY] = fresh
        return fresh

    def categories(self) -> list[str]:
        """Every category with a product in stock, sorted."""
        return sorted({p.category for p in self.products.values() if p.in_stock})

    def in_category(self, category: str) -> list[Product]:
        """The category's products in stock, by sku, at most ``PAGE_ITEMS``."""
        found = [p for p in self.products.values() if p.category == category and p.in_stock]
        return found[:PAGE_ITEMS]

    def featured(self) -> list[Product]:
        """The first product in stock of each category (the home page's shelf)."""
        seen: dict[str, Product] = {}
        for p in self.products.values():
            if p.in_stock and p.category not in seen:
                seen[p.category] = p
        return list(seen.values())[:PAGE_ITEMS]

    def some(self, skus: list[str]) -> list[Product]:
        """The known products among ``skus``, in that order (unknown ones left out)."""
        return [self.products[s] for s in skus if s in self.products]


def placeholder_svg(sku: str, label: str) -> str:
    """A 240x180 picture: a colour from the sku's hash and the product's name."""
    hue = int.from_bytes(hashlib.sha256(sku.encode()).digest()[:2], "big") % 360
    text = escape(label)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="180" viewBox="0 0 240 180">'
        f'<rect width="240" height="180" fill="hsl({hue},55%,82%)"/>'
        f'<circle cx="120" cy="78" r="44" fill="hsl({hue},50%,62%)"/>'
        '<text x="120" y="160" font-family="sans-serif" font-size="16" text-anchor="middle" '
        f'fill="#222">{text}</text></svg>'
    )
