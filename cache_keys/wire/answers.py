"""Answers the origin gives edges for one shopper: a segment grant and a rail, version 1.

``GET /v1/segment-token`` (the shopper cookie forwarded) answers a segment grant::

    {"v": 1, "token": "1.<hseg>.<expires_at_s>.<kid>.<sig>", "expires_at_s": 1764086400}

``GET /v1/recommendations?route=&k=`` answers a rail, the same document the edges answer
shoppers on ``/p13n/v1/rail/{route}``::

    {"v": 1, "items": [{"item": "SKU-1", "score": 0.93, "reason": "segment",
                        "name": "Whole milk 1 l", "image_url": "https://…/milk.jpg",
                        "price": 2.49}],
     "variants": {"rail-algo": "boost"}, "degraded": false}

An item's ``name``, ``image_url`` and ``price`` are there when the catalog labels it
(``cache_keys.wire.labels``: names cut to ``MAX_ITEM_NAME``); every tier passes them through.

The edge verifies a granted token with its own key ring before trusting it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cache_keys.errors import WireError
from cache_keys.tokens import MAX_TOKEN_LENGTH
from cache_keys.wire import _check as c
from cache_keys.wire.labels import labels_to_json, parse_labels

__all__ = [
    "RailAnswer",
    "RailItem",
    "SegmentGrant",
    "parse_rail",
    "parse_segment_grant",
    "rail_item_to_json",
    "rail_to_json",
    "segment_grant_to_json",
]

MAX_RAIL_ITEMS = 100
# Why an item is there, as a shopper or a debug panel reads it: a token from an edge's rerank
# ("segment", "recent-category") or a sentence from the origin or a merchandising rule ("due
# again: you buy this every ~9 days"); one line of printable text, never a shopper's data.
MAX_REASON = 120
_REASON_RE = re.compile(r"[^\x00-\x20\x7f][^\x00-\x1f\x7f]*")


@dataclass(frozen=True, slots=True)
class SegmentGrant:
    """A freshly signed segment cookie value and when it expires."""

    token: str
    expires_at_s: int


@dataclass(frozen=True, slots=True)
class RailItem:
    """One recommended item with its final score, why it is there, and its labels."""

    item: str
    score: float
    reason: str
    name: str = ""
    image_url: str = ""
    price: float | None = None


@dataclass(frozen=True, slots=True)
class RailAnswer:
    """The answer of a rail: items, the variation names served, whether it is degraded."""

    items: tuple[RailItem, ...]
    variants: dict[str, str] = field(default_factory=dict)
    degraded: bool = False


def parse_segment_grant(doc: Any) -> SegmentGrant:
    """Validate a decoded segment-grant document (the signature is checked by the edge)."""
    d = c.obj(doc, "$")
    c.version(d, "v", 1)
    return SegmentGrant(
        token=c.text(d.get("token"), "token", max_len=MAX_TOKEN_LENGTH),
        expires_at_s=c.integer(d.get("expires_at_s"), "expires_at_s"),
    )


def segment_grant_to_json(grant: SegmentGrant) -> dict[str, Any]:
    """The JSON-ready form of a segment grant."""
    return {"v": 1, "token": grant.token, "expires_at_s": grant.expires_at_s}


def _rail_item(doc: Any, f: str) -> RailItem:
    d = c.obj(doc, f)
    name, image_url = parse_labels(d, f)
    price = d.get("price")
    return RailItem(
        item=c.text(d.get("item"), f"{f}.item", c.ITEM_RE),
        score=c.number(d.get("score", 0.0), f"{f}.score", -1e12, 1e12),
        reason=c.text(d.get("reason", "origin"), f"{f}.reason", _REASON_RE, MAX_REASON),
        name=name,
        image_url=image_url,
        price=None if price is None else c.number(price, f"{f}.price", 0, 1e9),
    )


def rail_item_to_json(i: RailItem) -> dict[str, Any]:
    """The JSON-ready form of a rail item (labels only when set)."""
    return {
        "item": i.item,
        "score": i.score,
        "reason": i.reason,
        **labels_to_json(i.name, i.image_url, i.price),
    }


def parse_rail(doc: Any) -> RailAnswer:
    """Validate a decoded rail document."""
    d = c.obj(doc, "$")
    c.version(d, "v", 1)
    items = tuple(
        _rail_item(v, f"items[{i}]")
        for i, v in enumerate(c.seq(d.get("items"), "items", MAX_RAIL_ITEMS))
    )
    variants = {
        c.text(k, "variants", c.SLUG_RE): c.text(v, f"variants.{k}", c.SLUG_RE)
        for k, v in c.obj(d.get("variants", {}), "variants").items()
    }
    degraded = c.boolean(d.get("degraded", False), "degraded")
    if len(variants) > 50:
        raise WireError("variants", "more than 50 experiments")
    return RailAnswer(items=items, variants=variants, degraded=degraded)


def rail_to_json(rail: RailAnswer) -> dict[str, Any]:
    """The JSON-ready form of a rail (what shoppers receive)."""
    return {
        "v": 1,
        "items": [rail_item_to_json(i) for i in rail.items],
        "variants": dict(rail.variants),
        "degraded": rail.degraded,
    }
