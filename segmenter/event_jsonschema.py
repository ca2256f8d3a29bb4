"""Every event version as JSON Schema (draft 2020-12), served at ``GET /v1/schemas/events``.

Producers validate before sending; the collector's own check (``segmenter.event.validate``)
enforces the same bounds, and a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any

from segmenter.registry import CURRENT, ITEM_TYPES, VERSIONS, Field

__all__ = ["MAX_BATCH", "event_json_schema"]

MAX_BATCH = 500
_NOTES = {
    "v": "schema version (segmenter.registry)",
    "ts": "event time, epoch milliseconds",
    "bot": "set by producers that detect bots; excluded from experiments",
    "traceparent": "W3C trace context",
    "event_id": "client-generated; retries reuse it (24 h dedupe)",
    "position": "0-based place of the item in the list the shopper saw it in",
    "user": "anonymous shopper id or the shop's customer id",
    "anon": "identify: the anonymous id signing in as user",
    "degraded": "an exposure marker: the answer shown was degraded (guardrails only)",
}


def _prop(f: Field) -> dict[str, Any]:
    if f.kind == "text":
        return {"type": "string", "pattern": f"^{f.pattern}$", "maxLength": 64}
    if f.kind == "enum":
        return {"enum": list(f.values)}
    if f.kind == "bool":
        return {"type": "boolean", "default": False}
    out: dict[str, Any] = {"type": "integer" if f.kind == "int" else "number"}
    out.update(minimum=f.minimum, maximum=f.maximum)
    return out


def _event(v: int) -> dict[str, Any]:
    fields = VERSIONS[v].fields
    props: dict[str, Any] = {"v": {"const": v}} | {n: _prop(f) for n, f in fields.items()}
    if "qty" in props:
        props["qty"]["default"] = 1
    for name, note in _NOTES.items():
        if name in props:
            props[name]["description"] = note
    return {
        "type": "object",
        "required": ["v", *(n for n, f in fields.items() if f.required)],
        "additionalProperties": False,
        "properties": props,
        "allOf": [
            {
                "if": {"properties": {"type": {"enum": sorted(ITEM_TYPES)}}},
                "then": {"required": ["item"]},
            },
            {
                "if": {"properties": {"type": {"const": "exposure"}}},
                "then": {"required": ["experiment", "variant"]},
            },
            {
                "if": {"properties": {"type": {"const": "identify"}}},
                "then": {"required": ["anon"]},
                "else": {"not": {"required": ["anon"]}},
            },
        ],
    }


def event_json_schema() -> dict[str, Any]:
    """The schema of a ``POST /v1/events`` body: one event, or ``{"events": [...]}``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:p13n:schemas:events:v{CURRENT}",
        "title": f"p13n event (versions {', '.join(map(str, VERSIONS))})",
        "$defs": {
            "event": {"oneOf": [{"$ref": f"#/$defs/v{v}"} for v in VERSIONS]},
            **{f"v{v}": _event(v) for v in VERSIONS},
        },
        "oneOf": [
            {"$ref": "#/$defs/event"},
            {
                "type": "object",
                "required": ["events"],
                "additionalProperties": False,
                "properties": {
                    "events": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_BATCH,
                        "items": {"$ref": "#/$defs/event"},
                    }
                },
            },
        ],
    }
