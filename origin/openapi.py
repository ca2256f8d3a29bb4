"""The OpenAPI 3.1 document served at ``/openapi.json``.

Operations are described here, by (path, method); the served document holds exactly the
operations the app mounts (a test checks both directions), so it cannot drift silently.
Path converters are shown as plain parameters (``/v1/admin/catalog/{sku:path}`` is
``/v1/admin/catalog/{sku}``). The console (``/console``, a mounted HTML app for people, not
an API) is not described here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

__all__ = ["OPERATIONS", "document", "mounted_operations", "routes"]

_PROBLEM = {"description": "problem+json (RFC 9457)", "content": {"application/problem+json": {}}}
_JSON = "application/json"


def _param(
    name: str, where: str = "query", *, required: bool = False, desc: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": desc,
        "schema": {"type": "string"},
    }


def _op(
    summary: str,
    tag: str,
    *,
    params: Iterable[dict[str, Any]] = (),
    body: str | None = None,
    ok: str = "200",
    auth: str | None = None,
    errors: Iterable[str] = ("400",),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "parameters": list(params),
        "responses": {ok: {"description": "success"}, **{e: _PROBLEM for e in errors}},
    }
    if body:
        op["requestBody"] = {"required": True, "content": {body: {"schema": {"type": "object"}}}}
    if auth:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Bearer token with role {auth} (or admin)."
        op["responses"].update({"401": _PROBLEM, "403": _PROBLEM})
    return op


_KEY = _param("key", "path", desc="experiment key")
_ADMIN_ERR = ("400", "404", "409", "503")
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/healthz", "get"): _op("Liveness: the process serves", "operations", errors=()),
    ("/readyz", "get"): _op(
        "Readiness: Redis answers within budget", "operations", errors=("503",)
    ),
    ("/metrics", "get"): _op("Prometheus metrics", "operations", errors=()),
    ("/openapi.json", "get"): _op("This document", "operations", errors=()),
    ("/v1/recommendations", "get"): _op(
        "Full per-user recommendations (degraded to the popular list when Redis is down)",
        "shoppers",
        params=[
            _param("route"),
            _param("k"),
            _param("user", desc="service token or trusted local only"),
        ],
        errors=("400", "401", "403"),
    ),
    ("/v1/segment-token", "get"): _op(
        "A fresh signed segment cookie for the shopper",
        "edges",
        params=[_param("user")],
        errors=("400", "401", "403", "503"),
    ),
    ("/v1/segments/{hseg}/list", "get"): _op(
        "A segment list as edges cache it (ETag, CDN-Cache-Control, Cache-Tag)",
        "edges",
        params=[_param("hseg", "path"), _param("variant"), _param("route")],
        errors=("304", "400", "404", "503"),
    ),
    ("/v1/edge/config", "get"): _op(
        "Experiments, segment registry, generations, item mask (ETag)",
        "edges",
        errors=("304", "503"),
    ),
    ("/v1/events", "post"): _op(
        "Collector: one Event v1 or a batch of up to 500 (202 with per-event results); an "
        "opted-out request (Sec-GPC: 1 or the opt-out cookie) is 202 with opted_out: true "
        "and nothing stored",
        "events",
        params=[_param("site_key", desc="publishable site key, when the site requires one")],
        body=_JSON,
        ok="202",
        errors=("400", "413", "429", "503"),
    ),
    ("/v1/sdk/p13n.js", "get"): _op(
        "Browser snippet: batches Event v1 and sends them with navigator.sendBeacon (ETag)",
        "events",
        errors=("304",),
    ),
    ("/v1/schemas/events", "get"): _op(
        "The Event v1 JSON Schema, for producers to validate before sending",
        "events",
        errors=(),
    ),
    ("/v1/edge/heartbeat", "post"): _op(
        "An edge reports config ETag and revision, applied purge ids, hit/stale/miss counts "
        "and (optionally) traffic counters",
        "edges",
        body=_JSON,
        ok="204",
        auth="service",
        errors=("400", "413", "503"),
    ),
    ("/v1/admin/experiments", "post"): _op(
        "Create a draft experiment",
        "experiments",
        body=_JSON,
        ok="201",
        auth="experimenter",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/experiments", "get"): _op(
        "List experiments", "experiments", params=[_param("status")], auth="experimenter"
    ),
    ("/v1/admin/experiments/{key}", "get"): _op(
        "Read one experiment", "experiments", params=[_KEY], auth="experimenter", errors=_ADMIN_ERR
    ),
    ("/v1/admin/experiments/{key}", "patch"): _op(
        "Update (coverage in place; new weights on a running experiment re-seed)",
        "experiments",
        params=[_KEY],
        body=_JSON,
        auth="experimenter",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/experiments/{key}/start", "post"): _op(
        "Start", "experiments", params=[_KEY], auth="experimenter", errors=_ADMIN_ERR
    ),
    ("/v1/admin/experiments/{key}/stop", "post"): _op(
        "Stop", "experiments", params=[_KEY], auth="experimenter", errors=_ADMIN_ERR
    ),
    ("/v1/admin/experiments/{key}/rollback", "post"): _op(
        "Restore an earlier version",
        "experiments",
        params=[_KEY],
        body=_JSON,
        auth="experimenter",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/experiments/{key}/results", "get"): _op(
        "Per-variant results, lift with 95% CI, sample-ratio-mismatch check",
        "experiments",
        params=[_KEY],
        auth="experimenter",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/invalidations", "post"): _op(
        "Invalidate tags (soft or hard): generations, mask, pub/sub, Cloudflare",
        "invalidations",
        body=_JSON,
        ok="202",
        auth="merchandiser",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/invalidations/{id}", "get"): _op(
        "An invalidation and how many live edges applied it",
        "invalidations",
        params=[_param("id", "path")],
        auth="merchandiser",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/catalog", "post"): _op(
        "Bulk import (text/csv or application/x-ndjson)",
        "catalog",
        body="text/csv",
        auth="merchandiser",
        errors=(*_ADMIN_ERR, "413"),
    ),
    ("/v1/admin/catalog/{sku}", "put"): _op(
        "Create or replace one sku (going out of stock purges it hard)",
        "catalog",
        params=[_param("sku", "path")],
        body=_JSON,
        auth="merchandiser",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/catalog/{sku}", "get"): _op(
        "Read one sku",
        "catalog",
        params=[_param("sku", "path")],
        auth="merchandiser",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/shoppers/{id}", "delete"): _op(
        "Erase a shopper (features, DLQ entries, archive) and record a tombstone",
        "privacy",
        params=[_param("id", "path")],
        auth="admin",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/audit", "get"): _op(
        "The audit log, newest first",
        "admin",
        params=[_param(n) for n in ("limit", "before", "target", "action")],
        auth="admin",
    ),
    ("/v1/admin/tokens", "get"): _op("Each token's role, by fingerprint", "admin", auth="admin"),
    ("/v1/admin/pipeline", "get"): _op(
        "Pipeline health: lag per partition, DLQ depth, live edges, hit ratio and freshness, "
        "offload and monthly egress",
        "operations",
        params=[_param("window_s", desc="history window, 60-3600 s (default 900)")],
        auth="admin",
        errors=("400", "503"),
    ),
    ("/v1/admin/dlq", "get"): _op(
        "Dead letters, newest first: reason, field, source and a bounded preview of the original",
        "operations",
        params=[_param("limit"), _param("before", desc="entry id cursor (next)")],
        auth="admin",
        errors=("400", "503"),
    ),
    ("/v1/admin/dlq/{id}", "get"): _op(
        "One dead letter's original bytes, whole (application/octet-stream, an attachment)",
        "operations",
        params=[_param("id", "path", desc="dead-letter entry id")],
        auth="admin",
        errors=("400", "404", "503"),
    ),
    ("/v1/admin/dlq/{id}/requeue", "post"): _op(
        "Re-validate a dead letter and append it to its partition stream (409 if still invalid)",
        "operations",
        params=[_param("id", "path", desc="dead-letter entry id")],
        auth="admin",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/dlq/{id}", "delete"): _op(
        "Drop a dead letter for good (audited)",
        "operations",
        params=[_param("id", "path", desc="dead-letter entry id")],
        auth="admin",
        errors=_ADMIN_ERR,
    ),
    ("/v1/admin/backup", "get"): _op(
        "The admin state as one backup document", "admin", auth="admin", errors=("400", "503")
    ),
    ("/v1/admin/restore", "post"): _op(
        "Validate a backup document, then replace the admin state with it (audited)",
        "admin",
        body=_JSON,
        auth="admin",
        errors=(*_ADMIN_ERR, "413"),
    ),
    ("/v1/bench/baseline", "get"): _op(
        "Benchmark baseline: one HGETALL (only with P13N_BENCH_BASELINE=1)",
        "operations",
        params=[_param("user")],
    ),
}


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


def document(app_routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document for the mounted routes."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method in sorted(mounted_operations(app_routes)):
        op = OPERATIONS.get((path, method))
        if op is not None:
            paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "p13n origin", "version": "1"},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


async def openapi(request: Request) -> Response:
    """``GET /openapi.json``."""
    doc = document(request.app.routes)
    return Response(orjson.dumps(doc), media_type="application/json")


def routes() -> list[BaseRoute]:
    """The OpenAPI route."""
    return [Route("/openapi.json", openapi, methods=["GET"])]
