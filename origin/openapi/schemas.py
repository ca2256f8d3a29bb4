"""JSON Schemas of the API's inputs, built from the validators' own patterns and bounds.

Each schema imports the regex or constant its validator checks, so the two cannot drift; a
rule JSON Schema cannot state (weights summing to 1, a field that must equal the path) is
said in the description and answered 422 by the server (``origin.errors.Unprocessable``).

    pattern(SLUG_RE) -> "^(?:[a-z0-9][a-z0-9-]{0,39})$"
"""

from __future__ import annotations

import re
from typing import Any

from cache_keys.costs import TRAFFIC_FIELDS
from cache_keys.keys import TAG_KINDS
from cache_keys.segments import _HSEG_RE
from cache_keys.tokens import _SHOPPER_RE
from cache_keys.wire._check import INT64_MAX, INT64_MIN, SLUG_RE
from cache_keys.wire.purge import ALL_TAG
from origin.admin.backup import GEN_MAX
from origin.catalog_records import CATEGORY_RE, SKU_RE
from origin.feeds import HEARTBEAT_TIERS, MAX_COUNT
from segmenter.shoppers import DEFAULT_CUSTOMER_ID_MAX_LEN, DEFAULT_CUSTOMER_ID_PATTERN

__all__ = [
    "HSEG",
    "PROBLEM",
    "SHOPPER_ID",
    "SKU",
    "SLUG",
    "SLUG_ANY_CASE",
    "catalog_csv",
    "catalog_entry",
    "heartbeat",
    "pattern",
    "rollback",
    "string",
]


def pattern(rx: re.Pattern[str] | str) -> str:
    """A Python regex used with ``fullmatch`` as an anchored JSON Schema pattern."""
    return f"^(?:{rx.pattern if isinstance(rx, re.Pattern) else rx})$"


def string(rx: re.Pattern[str] | str, desc: str = "", max_len: int | None = None) -> dict[str, Any]:
    """A string schema of ``rx``."""
    out: dict[str, Any] = {"type": "string", "pattern": pattern(rx)}
    if max_len is not None:
        out["maxLength"] = max_len
    if desc:
        out["description"] = desc
    return out


SLUG = string(SLUG_RE, "1-40 characters of a-z, 0-9 and '-'")
HSEG = string(_HSEG_RE, "a segment hash: 16 characters of a-z2-7")
SHOPPER_ID = string(_SHOPPER_RE, "a 22-character anonymous shopper id")
# ``?user=``: an anonymous id or a customer id (``segmenter.shoppers``): the default
# P13N_CUSTOMER_ID_PATTERN is shown; a shop's own pattern may narrow it.
USER_ID = {
    "anyOf": [
        SHOPPER_ID,
        {
            "type": "string",
            "pattern": f"^(?:{DEFAULT_CUSTOMER_ID_PATTERN})$",
            "minLength": 1,
            "maxLength": DEFAULT_CUSTOMER_ID_MAX_LEN,
            "description": "a customer id (P13N_CUSTOMER_ID_PATTERN, default shown)",
        },
    ]
}
# A route or experiment key as ``cache_keys.keys.normalize_slug`` takes it: any letter case
# (lowered), never shaped like a shopper id (refused so no shopper id becomes a cache key).
_NOT_SHOPPER = {"not": {"pattern": pattern(_SHOPPER_RE)}}
SLUG_ANY_CASE = {
    "type": "string",
    "pattern": pattern(SLUG_RE.pattern.replace("a-z", "A-Za-z")),
    **_NOT_SHOPPER,
    "description": "a slug in any letter case (lowered); never shaped like a shopper id",
}
# ``origin.catalog_records.parse_sku``: the wire item id, and no empty, "." or ".." part
# between slashes (proxies would resolve it into another sku's URL).
_PART = r"(?:[A-Za-z0-9_-]|\.[A-Za-z0-9_-]|\.\.[A-Za-z0-9._-])[A-Za-z0-9._-]*"
SKU = {
    "type": "string",
    "maxLength": 64,
    "allOf": [
        {"pattern": pattern(SKU_RE)},
        {"pattern": pattern(rf"[A-Za-z0-9][A-Za-z0-9._-]*(?:/{_PART})*")},
    ],
    "description": "1-64 characters of A-Z a-z 0-9 . _ / -; no empty, '.' or '..' part",
}
_OPT_EPOCH_MS = {
    "type": ["integer", "null"],
    "minimum": 0,
    "maximum": INT64_MAX,
    "description": "epoch ms or null",
}
_UNIT = {"type": "number", "minimum": 0, "maximum": 1}

PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; ``field`` names the input at fault",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": "string"},
    },
}


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), **kw: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(required),
        "additionalProperties": False,
        **kw,
    }


def heartbeat() -> dict[str, Any]:
    """``origin.feeds.heartbeat``'s body."""
    return _obj(
        {
            "edge_id": SLUG,
            "config_etag": {"type": "string", "maxLength": 128},
            "config_revision": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
            "generations": {
                "type": "object",
                "maxProperties": 10_000,
                "additionalProperties": _PAIR,
                "description": "older edges: tag -> [soft, hard]",
            },
            "counts": {
                "type": "object",
                "propertyNames": {"enum": sorted(HEARTBEAT_TIERS)},
                "additionalProperties": {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
            },
            "applied_purges": {
                "type": "array",
                "maxItems": 100,
                "items": {"type": "string", "minLength": 1, "maxLength": 64},
            },
            "traffic": {
                "type": ["object", "null"],
                "description": "counters since the edge started (absent or null: an older edge)",
                "required": list(TRAFFIC_FIELDS),
                "additionalProperties": False,
                "properties": {
                    k: {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}
                    for k in TRAFFIC_FIELDS
                },
            },
        },
        ("edge_id",),
    )


# Every integer input is signed 64-bit (``cache_keys.wire._check.whole_number``).
_INT = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
_PAIR = {"type": "array", "items": _INT, "minItems": 2, "maxItems": 2}
_GEN_PAIR = {**_PAIR, "items": {"type": "integer", "minimum": 0, "maximum": GEN_MAX}}


def catalog_entry() -> dict[str, Any]:
    """``origin.catalog_records.parse_entry``'s body of ``PUT /v1/admin/catalog/{sku}``."""
    flag = {"type": "boolean"}
    both = {
        "required": ["durable", "repurchasable"],
        "properties": {"durable": flag, "repurchasable": flag},
    }
    return _obj(
        {
            "stock": {"type": "integer", "minimum": 0, "maximum": 10**9},
            "price": {"type": "number", "minimum": 0, "maximum": 1e9},
            "category": string(CATEGORY_RE),
            "durable": {"type": ["boolean", "null"], "description": "null: not given"},
            "repurchasable": {
                "type": ["boolean", "null"],
                "description": "the opposite of durable; null: not given",
            },
            "sku": {**SKU, "description": "optional; must equal the path's sku (else 422)"},
        },
        ("stock", "price", "category"),
        # durable and repurchasable, when both given, must say the same thing two ways
        anyOf=[
            {"not": both},
            {"properties": {"durable": {"const": True}, "repurchasable": {"const": False}}},
            {"properties": {"durable": {"const": False}, "repurchasable": {"const": True}}},
        ],
    )


def catalog_csv() -> dict[str, Any]:
    """A CSV import as ``origin.admin.catalog`` reads it (the plain form: no quoting)."""
    # at most 64 characters before the comma (a lookahead: the parts' rules bound no length)
    sku = rf"(?![^,\r\n]{{65}})[A-Za-z0-9][A-Za-z0-9._-]*(?:/{_PART})*"
    row = rf"{sku},[0-9]{{1,9}},[0-9]{{1,9}}(?:\.[0-9]{{1,2}})?,{CATEGORY_RE.pattern}"
    # a row has no more fields than the header: durable only under a durable column
    plain = rf"sku,stock,price,category(?:\r?\n{row})+"
    with_durable = rf"sku,stock,price,category,durable(?:\r?\n{row}(?:,(?:true|false))?)+"
    return {
        "type": "string",
        "pattern": pattern(rf"(?:{plain}|{with_durable})\r?\n?"),
        "description": "header sku,stock,price,category[,durable], then one row per sku, with "
        "no more fields than the header; a sku listed twice is 422. Also accepted: "
        "application/x-ndjson, one {sku, stock, price, category, durable} object per line.",
    }


def rollback() -> dict[str, Any]:
    """``origin.admin.experiments.rollback``'s body."""
    version = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
    return _obj({"version": version}, ("version",))


def _tag() -> dict[str, Any]:
    # ``cache_keys.keys.tag``: kinds, then a value lowered; seg takes an hseg; never a shopper id
    kinds = sorted(TAG_KINDS - {"seg"})
    value = SLUG_RE.pattern.replace("a-z", "A-Za-z")
    catalog = r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}"
    slug_kinds = "|".join(k for k in kinds if k in ("route", "exp"))
    other_kinds = "|".join(k for k in kinds if k not in ("route", "exp"))
    alts = ["all", re.escape(ALL_TAG), f"seg:{_HSEG_RE.pattern}", f"(?:{slug_kinds}):{value}",
            f"(?:{other_kinds}):{catalog}"]  # fmt: skip
    return {
        "type": "string",
        "pattern": pattern("|".join(alts)),
        "not": {"pattern": pattern(f"(?:{'|'.join(kinds)}):{_SHOPPER_RE.pattern}")},
        "description": "all (or *), or kind:value with kind among "
        f"{sorted(TAG_KINDS)}; values are lowered; a value shaped like a shopper id is refused",
    }
