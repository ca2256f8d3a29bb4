"""The OpenAPI 3.1 document served at ``/openapi.json``.

Operations are described in ``origin.openapi.operations``, by (path, method), with schemas
built from the validators' own patterns and bounds (``origin.openapi.schemas``); the served
document holds exactly the operations the app mounts (a test checks both directions), so it
cannot drift silently.
Path converters are shown as plain parameters (``/v1/admin/catalog/{sku:path}`` is
``/v1/admin/catalog/{sku}``). The console (``/console``, a mounted HTML app for people, not
an API) is not described here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from origin.openapi.operations import OPERATIONS
from origin.openapi.schemas import PROBLEM
from origin.state import get_state
from segmenter.event_jsonschema import event_json_schema

__all__ = ["OPERATIONS", "document", "events_schema", "mounted_operations", "routes"]


def _openapi_path(path: str) -> str:
    """``/v1/admin/catalog/{sku:path}`` -> ``/v1/admin/catalog/{sku}``."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def mounted_operations(app_routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(path, method) of every mounted HTTP route, HEAD aside."""
    out = set()
    for r in app_routes:
        if isinstance(r, Route):
            for m in r.methods or ():
                if m != "HEAD":
                    out.add((_openapi_path(r.path), m.lower()))
    return out


def events_schema(max_skew_ms: int) -> dict[str, Any]:
    """``POST /v1/events``'s body: an event of any registered version
    (``segmenter.event_jsonschema``). ``ts`` is also
    no later than the collector's clock plus the allowed skew, a bound that moves with the
    clock: said in the description, and a single event past it is 422.

    Batch items are any JSON: the collector answers 202 and rejects invalid ones one by one.
    """
    js = event_json_schema()
    versions = []
    for ref in js["$defs"]["event"]["oneOf"]:  # every version, inlined: no $ref to resolve
        version = copy.deepcopy(js["$defs"][ref["$ref"].rsplit("/", 1)[1]])
        ts = version["properties"]["ts"]
        ts["description"] += (
            f"; at most the collector's clock plus {max_skew_ms} ms (a single event later "
            "than that is 422)"
        )
        versions.append(version)
    event = {"oneOf": versions}
    batch = copy.deepcopy(js["oneOf"][1])
    batch["properties"]["events"]["items"] = {
        "description": "an event of any version; an invalid one is rejected in results, the "
        "rest stored"
    }
    return {"oneOf": [event, batch]}


def document(app_routes: Iterable[BaseRoute], *, max_skew_ms: int = 0) -> dict[str, Any]:
    """The OpenAPI document for the mounted routes; ``max_skew_ms`` is the collector's
    allowed clock skew (said in the description of an event's ``ts``)."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method in sorted(mounted_operations(app_routes)):
        op = OPERATIONS.get((path, method))
        if op is not None:
            paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "p13n origin", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "problem": PROBLEM,
                "events": events_schema(max_skew_ms),
            },
        },
    }


async def openapi(request: Request) -> Response:
    """``GET /openapi.json``."""
    skew_ms = get_state(request).settings.max_clock_skew_ms
    doc = document(request.app.routes, max_skew_ms=skew_ms)
    return Response(orjson.dumps(doc), media_type="application/json")


def routes() -> list[BaseRoute]:
    """The OpenAPI route."""
    return [Route("/openapi.json", openapi, methods=["GET"])]
