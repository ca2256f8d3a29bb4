"""Catalog records: one encode/decode pair, and strict validation of what merchandisers send.

Stored in ``Keys.catalog`` as JSON (see ``segmenter/schema.py``)::

    {"category": "dairy", "price": 2.49, "stock": 40, "durable": false, "updated_ms": 1764…}

Items are repurchasable unless marked durable: a shopper who bought milk is offered milk
again; one who bought a kettle is not offered kettles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cache_keys.wire._check import ITEM_RE, whole_number
from origin.errors import BadRequest

__all__ = ["SKU_RE", "CatalogEntry", "decode_entry", "encode_entry", "parse_entry", "parse_sku"]

# The wire contract's item id (``cache_keys.wire``), so every sku can travel to edges.
SKU_RE = ITEM_RE
CATEGORY_RE = re.compile(r"[a-z0-9][a-z0-9._/-]{0,63}")
_FIELDS = frozenset({"category", "price", "stock", "durable", "repurchasable"})


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One sku's merchandising facts."""

    category: str
    price: float
    stock: int
    durable: bool
    updated_ms: int = 0

    @property
    def in_stock(self) -> bool:
        """Whether at least one unit is available."""
        return self.stock > 0


def encode_entry(entry: CatalogEntry) -> bytes:
    """The stored JSON."""
    return orjson.dumps(
        {
            "category": entry.category,
            "price": entry.price,
            "stock": entry.stock,
            "durable": entry.durable,
            "updated_ms": entry.updated_ms,
        }
    )


def decode_entry(raw: bytes | str | None) -> CatalogEntry | None:
    """The stored entry, or None when absent or unreadable (the item is then 'unknown')."""
    if raw is None:
        return None
    try:
        d = orjson.loads(raw)
        return CatalogEntry(
            category=str(d.get("category", "")),
            price=float(d.get("price", 0.0)),
            stock=int(d.get("stock", 0)),
            durable=bool(d.get("durable", False)),
            updated_ms=int(d.get("updated_ms", 0)),
        )
    except (ValueError, TypeError, AttributeError):
        return None


def parse_sku(value: str) -> str:
    """Validate a sku from a path or a file (400 naming the problem)."""
    if not SKU_RE.fullmatch(value):
        raise BadRequest(
            f"sku {value[:70]!r} must be 1-64 characters of A-Z a-z 0-9 . _ / - ", field="sku"
        )
    # "/" may separate parts of an id ("shoes/42"), but a sku is no path: no empty, "." or
    # ".." parts, which proxies and caches would resolve into another sku's URL.
    if any(part in ("", ".", "..") for part in value.split("/")):
        raise BadRequest(
            f"sku {value[:70]!r} may not have empty, '.' or '..' parts between slashes",
            field="sku",
        )
    return value


def _durable(d: Mapping[str, Any]) -> bool:
    durable, repurchasable = d.get("durable"), d.get("repurchasable")
    for name, value in (("durable", durable), ("repurchasable", repurchasable)):
        if value is not None and not isinstance(value, bool):
            raise BadRequest(f"{name} must be true or false", field=name)
    if durable is not None and repurchasable is not None and durable == repurchasable:
        raise BadRequest("durable and repurchasable contradict each other", field="durable")
    if durable is None and repurchasable is None:
        return False  # repurchasable unless marked durable
    return bool(durable) if durable is not None else not repurchasable


def parse_entry(doc: Any, now_ms: int, where: str = "") -> CatalogEntry:
    """A catalog entry from submitted JSON; every problem is a 400 naming its field."""
    if not isinstance(doc, Mapping):
        raise BadRequest(f"{where}body must be a JSON object", field="$")
    unknown = set(doc) - _FIELDS - {"sku"}
    if unknown:
        raise BadRequest(f"{where}unknown fields {sorted(unknown)}", field=sorted(unknown)[0])
    stock, price, category = whole_number(doc.get("stock")), doc.get("price"), doc.get("category")
    if stock is None or not 0 <= stock <= 10**9:
        raise BadRequest(f"{where}stock must be an integer from 0 to 1e9", field="stock")
    if not isinstance(price, int | float) or isinstance(price, bool) or not 0 <= price <= 1e9:
        raise BadRequest(f"{where}price must be a number from 0 to 1e9", field="price")
    if not isinstance(category, str) or not CATEGORY_RE.fullmatch(category):
        raise BadRequest(
            f"{where}category must be 1-64 characters of a-z 0-9 . _ / -", field="category"
        )
    return CatalogEntry(
        category=category,
        price=float(price),
        stock=stock,
        durable=_durable(doc),
        updated_ms=now_ms,
    )
