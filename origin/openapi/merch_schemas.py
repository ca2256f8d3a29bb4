"""Schemas of the merchandising endpoints: invalidations and rules, with ``when`` (built
from the validators' own bounds, as ``origin.openapi.schemas``)."""

from __future__ import annotations

from typing import Any

from cache_keys.wire import PURGE_MODES, RULE_KINDS
from cache_keys.wire._check import ITEM_RE
from cache_keys.wire.merch import MAX_POSITION, MAX_RULE_SKUS
from origin.admin.invalidations import MAX_TAGS
from origin.admin.merch_rules import RULE_FIELDS
from origin.openapi.schemas import SLUG, _obj, _tag, string

__all__ = ["WHEN", "invalidation", "merch_rule"]

WHEN = {
    "description": "when to apply the change: epoch milliseconds or an RFC 3339 time with its "
    "offset; 422 when past, garbled or more than a year ahead",
    "type": ["integer", "string"],
}


def invalidation() -> dict[str, Any]:
    """``origin.admin.invalidations.create``'s body."""
    return _obj(
        {
            "tags": {"type": "array", "minItems": 1, "maxItems": MAX_TAGS, "items": _tag()},
            "mode": {"enum": sorted(PURGE_MODES), "default": "soft"},
            "reason": {"type": "string", "maxLength": 500},
            "when": WHEN,
        },
        ("tags",),
    )


def merch_rule() -> dict[str, Any]:
    """``origin.admin.merch_rules.create``'s body."""
    time = {"type": ["integer", "string", "null"], "description": "epoch ms or RFC 3339"}
    props = {
        "name": SLUG,
        "kind": {"enum": list(RULE_KINDS)},
        "skus": {"type": "array", "maxItems": MAX_RULE_SKUS, "items": string(ITEM_RE)},
        "category": {"type": "string", "maxLength": 64},
        "routes": {"type": "array", "maxItems": 50, "items": SLUG},
        "segments": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "segment names (edges see them hashed)",
        },
        "position": {"type": "integer", "minimum": 1, "maximum": MAX_POSITION, "default": 1},
        "factor": {"type": "number", "description": "boost: above 1; bury: between 0 and 1"},
        "start_ms": time,
        "end_ms": time,
        "reason": {"type": "string", "maxLength": 500},
        "when": WHEN,
    }
    assert set(props) == {*RULE_FIELDS, "when"}  # every field the API takes, no other
    return _obj(props, ("name", "kind"))
