"""Catalog records: one encode/decode pair, and strict validation of what merchandisers send.

Stored in ``Keys.catalog`` as JSON (see ``segmenter/schema.py``)::

    {"category": "dairy", "price": 2.49, "stock": 40, "durable": false, "updated_ms": 1764…,
     "name": "Whole milk 1 l", "image_url": "https://cdn.shop.example/milk.jpg",
     "category_path": "Grocery > Dairy > Milk"}

``category`` is the slug ranking, tags and purges use; ``name``, ``image_url`` and
``category_path`` (the shop's breadcrumb) are for people: the console, and storefronts
reading the catalog. They are optional and stored only when set.

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
_FIELDS = frozenset(
    {"category", "price", "stock", "durable", "repurchasable", "name", "image_url", "category_path"}
)
MAX_NAME = 200
MAX_IMAGE_URL = 2048
# An absolute http(s) URL without spaces, quotes or angle brackets (it lands in HTML).
IMAGE_URL_RE = re.compile(r"https?://[^\s\"'<>\\]+")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One sku's merchandising facts."""

    category: str
    price: float
    stock: int
    durable: bool
    updated_ms: int = 0
    name: str = ""
    image_url: str = ""
    category_path: str = ""

    @property
    def in_stock(self) -> bool:
        """Whether at least one unit is available."""
        return self.stock > 0


def encode_entry(entry: CatalogEntry) -> bytes:
    """The stored JSON."""
    doc: dict[str, Any] = {
        "category": entry.category,
        "price": entry.price,
        "stock": entry.stock,
        "durable": entry.durable,
        "updated_ms": entry.updated_ms,
    }
    for name in ("name", "image_url", "category_path"):
        if getattr(entry, name):
            doc[name] = getattr(entry, name)
    return orjson.dumps(doc)


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
            name=str(d.get("name", "")),
            image_url=str(d.get("image_url", "")),
            category_path=str(d.get("category_path", "")),
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
        **_labels(doc, where),
    )


def _text(doc: Mapping[str, Any], name: str, where: str) -> str:
    value = doc.get(name, "")
    if not isinstance(value, str) or len(value) > MAX_NAME or not value.isprintable():
        raise BadRequest(
            f"{where}{name} must be text of at most {MAX_NAME} printable characters", field=name
        )
    return value.strip()


def _labels(doc: Mapping[str, Any], where: str) -> dict[str, str]:
    """The optional human-facing fields: name, image_url, category_path."""
    image = doc.get("image_url", "")
    if image != "" and (
        not isinstance(image, str)
        or len(image) > MAX_IMAGE_URL
        or not IMAGE_URL_RE.fullmatch(image)
    ):
        raise BadRequest(
            f"{where}image_url must be an absolute http(s) URL of at most {MAX_IMAGE_URL} "
            "characters without spaces, quotes or angle brackets",
            field="image_url",
        )
    return {
        "name": _text(doc, "name", where),
        "image_url": image,
        "category_path": _text(doc, "category_path", where),
    }
