"""Event v1 as JSON Schema (draft 2020-12), served at ``GET /v1/schemas/events``.

Producers validate before sending; the collector's own check (``segmenter.event.validate``)
enforces the same bounds, and a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any

from segmenter.event import (
    EVENT_TYPES,
    ITEM_TYPES,
    MAX_PRICE,
    MAX_QTY,
    MAX_TS_MS,
    MIN_TS_MS,
    REQUIRED,
    TEXT_FIELDS,
    VERSION,
)

__all__ = ["MAX_BATCH", "event_json_schema"]

MAX_BATCH = 500


def _event() -> dict[str, Any]:
    props: dict[str, Any] = {
        name: {"type": "string", "pattern": f"^{rx.pattern}$", "maxLength": 64}
        for name, rx in TEXT_FIELDS.items()
    }
    props.update(
        v={"const": VERSION, "description": "schema version"},
        type={"enum": list(EVENT_TYPES)},
        ts={"type": "integer", "minimum": MIN_TS_MS, "maximum": MAX_TS_MS,
            "description": "event time, epoch milliseconds"},
        price={"type": "number", "minimum": 0, "maximum": MAX_PRICE},
        qty={"type": "integer", "minimum": 1, "maximum": MAX_QTY, "default": 1},
        bot={"type": "boolean", "default": False,
             "description": "set by producers that detect bots; excluded from experiments"},
    )  # fmt: skip
    props["traceparent"]["description"] = "W3C trace context"
    props["user"]["description"] = "anonymous shopper id or the shop's customer id"
    props["anon"]["description"] = "identify: the anonymous id signing in as user"
    props["event_id"]["description"] = "client-generated; retries reuse it (24 h dedupe)"
    return {
        "type": "object",
        "required": ["v", *REQUIRED],
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
        "$id": "urn:p13n:schemas:events:v1",
        "title": "p13n event v1",
        "$defs": {"event": _event()},
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
