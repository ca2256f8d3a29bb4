"""JSON Schemas of the experiments and backup APIs' inputs (see ``origin.openapi.schemas``)."""

from __future__ import annotations

from typing import Any

from cache_keys.wire._check import INT64_MAX
from cache_keys.wire.config import (
    _ORIGIN_RE,
    _PATH_RE,
    EDGE_WEIGHT_NAMES,
    EXPERIMENT_STATUSES,
    MAX_SEGMENTS,
    ORIGIN_WEIGHT_NAMES,
)
from origin.admin.backup import BACKUP_KIND, BACKUP_VERSION
from origin.admin.rules import VARIATION_FIELDS
from origin.catalog_records import SKU_RE
from origin.openapi.schemas import _GEN_PAIR, _INT, _OPT_EPOCH_MS, _UNIT, HSEG, SLUG, _obj, pattern

__all__ = ["backup", "experiment_create", "experiment_update", "holdout", "record"]


def _weight_map(names: frozenset[str], desc: str) -> dict[str, Any]:
    # named properties, not propertyNames: generators (schemathesis) then build valid maps
    # directly instead of filtering random keys
    number = {"type": "number", "minimum": -100, "maximum": 100}
    return {
        "type": "object",
        "description": desc,
        "properties": dict.fromkeys(sorted(names), number),
        "additionalProperties": False,
    }


def _variation() -> dict[str, Any]:
    props = {
        "name": SLUG,
        "list_variant": {**SLUG, "default": "control"},
        "origin": {"type": ["string", "null"], "pattern": pattern(_ORIGIN_RE), "maxLength": 300},
        "origin_path": {"type": ["string", "null"], "pattern": pattern(_PATH_RE), "maxLength": 128},
        "weights": _weight_map(EDGE_WEIGHT_NAMES, "the edge rerank's weights"),
        "origin_weights": _weight_map(ORIGIN_WEIGHT_NAMES, "the origin ranking's weights"),
        "strategy": {
            "type": ["string", "null"],
            "maxLength": 40,
            "description": "a named ranking strategy (GET /v1/admin/strategies); it decides "
            "list_variant, weights and origin_weights (other values for them are 422), and "
            "an unknown name is 422",
        },
    }
    assert set(props) == VARIATION_FIELDS
    return _obj(props, ("name",))


_NAMESPACE = {
    "description": "a namespace range [start, end) of a layer; 0 <= start < end <= 1 (422 "
    "when start >= end)",
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["layer", "start", "end"],
            "properties": {"layer": SLUG, "start": _UNIT, "end": _UNIT},
        },
        {
            "type": "array",
            "prefixItems": [SLUG, _UNIT, _UNIT],
            "minItems": 3,
            "maxItems": 3,
        },
    ],
}


def _definition() -> dict[str, Any]:
    """Fields a create or update may set (``origin.admin.rules.DEFINITION_FIELDS``)."""
    return {
        "name": {"type": "string", "maxLength": 120},
        "description": {"type": "string", "maxLength": 2000},
        "variations": {
            "type": "array",
            "minItems": 2,
            "maxItems": 20,
            "items": _variation(),
            "description": "variation names must be unique (422 otherwise)",
        },
        "weights": {
            "type": ["array", "null"],
            "maxItems": 20,
            "items": {"type": "number", "minimum": 0, "maximum": 1},
            "description": "one per variation, summing to 1 (422 otherwise); null: equal",
        },
        "coverage": _UNIT,
        "namespace": _NAMESPACE,
        "segments": {"type": "array", "maxItems": MAX_SEGMENTS, "items": HSEG},
        "segment_names": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "routes": {"type": "array", "maxItems": 50, "items": SLUG},
        "start_ms": _OPT_EPOCH_MS,
        "stop_ms": {**_OPT_EPOCH_MS, "description": "after start_ms (422 otherwise)"},
        "hash_version": {"type": "integer", "minimum": 1, "maximum": 2, "default": 2},
        "auto_stop": {
            "type": "boolean",
            "default": False,
            "description": "stop the experiment when a treatment's guardrail (degraded, slow "
            "or error rate) is worse than control by the always-valid test",
        },
    }


def experiment_create() -> dict[str, Any]:
    """``origin.admin.experiments.create``'s body."""
    props = {
        "key": SLUG,
        "seed": {"type": "string", "minLength": 1, "maxLength": 60},
        **_definition(),
    }
    return _obj(props, ("key", "variations"))


def experiment_update() -> dict[str, Any]:
    """``origin.admin.experiments.update``'s body: at least one field; hash_version is fixed."""
    props = _definition()
    del props["hash_version"]
    return _obj(props, minProperties=1)


def record() -> dict[str, Any]:
    """A stored experiment record as ``origin.assignment.parse_experiment`` reads it."""
    return {
        "type": "object",
        "required": ["key", "seed", "variations", "weights"],
        "description": "key equals the record's key in the map (422 otherwise); one weight "
        "per variation (422 otherwise)",
        "properties": {
            "key": SLUG,
            "seed": {"type": "string", "maxLength": 80},
            "variations": {"type": "array", "minItems": 2, "maxItems": 20, "items": _variation()},
            "weights": {"type": "array", "maxItems": 20, "items": _UNIT},
            "coverage": _UNIT,
            "hash_version": {"type": "integer", "minimum": 1, "maximum": 2},
            "bucket_version": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
            "namespace": {"oneOf": [{"type": "null"}, _NAMESPACE["oneOf"][2]]},
            "status": {"enum": sorted(EXPERIMENT_STATUSES)},
            "segments": {"type": "array", "maxItems": MAX_SEGMENTS, "items": HSEG},
            "routes": {"type": "array", "maxItems": 50, "items": SLUG},
            "start_ms": _OPT_EPOCH_MS,
            "stop_ms": _OPT_EPOCH_MS,
        },
    }


def backup() -> dict[str, Any]:
    """``origin.admin.backup.validate``'s document (what ``GET /v1/admin/backup`` answers)."""
    rec = record()
    stored_entry = {
        "type": "object",
        "required": ["category"],
        "properties": {"category": {"type": "string"}, "price": {"type": "number"},
                       "stock": {"type": "number"}, "updated_ms": {"type": "number"}},
    }  # fmt: skip
    sku_keys = {"propertyNames": {"pattern": pattern(SKU_RE)}}
    return {
        "type": "object",
        "required": ["kind", "version", "experiments", "history", "catalog", "generations",
                     "item_mask"],
        "properties": {
            "kind": {"const": BACKUP_KIND},
            "version": {"const": BACKUP_VERSION},
            "experiments": {"type": "object", "additionalProperties": rec},
            "history": {"type": "object", "additionalProperties": {"type": "array", "items": rec}},
            "catalog": {"type": "object", **sku_keys, "additionalProperties": stored_entry},
            "generations": {"type": "object", "additionalProperties": _GEN_PAIR},
            "item_mask": {"type": "object", **sku_keys, "additionalProperties": _INT,
                          "description": "sku -> epoch ms"},
        },
    }  # fmt: skip


def holdout() -> dict[str, Any]:
    """``origin.admin.holdout.put_holdout``'s body."""
    return _obj(
        {"share": {**_UNIT, "description": "share of shoppers held out; 0 ends it"}}, ("share",)
    )
