"""Every operation of the origin API, by (path, method), with its parameters and body.

Parameter and body schemas come from ``origin.openapi.schemas`` (built from the validators'
own patterns and bounds); each operation lists every status its handler can answer, errors
as problem+json. 422 is listed where a rule cannot be stated in JSON Schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from origin.admin.audit import ENTRY_ID_RE
from origin.admin.pipeline import DLQ_ID_RE, MAX_LIMIT
from origin.openapi import admin_schemas as xs
from origin.openapi import merch_schemas, results_schema
from origin.openapi import schemas as s

__all__ = ["EVENTS_REF", "OPERATIONS"]

_JSON = "application/json"
EVENTS_REF = {"$ref": "#/components/schemas/events"}


def _problem(desc: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/problem"}
    return {"description": desc, "content": {"application/problem+json": {"schema": schema}}}


_ERRORS = {
    "400": "the request breaks a rule its schema states",
    "401": "no bearer token, or an unknown one",
    "403": "the token's role may not do this",
    "404": "not found",
    "409": "conflicts with the current state",
    "413": "body over the size limit",
    "422": "schema-valid, but breaks a rule the schema can only describe",
    "429": "rate limited (Retry-After)",
    "503": "Redis down or over budget (Retry-After)",
}


# Answers without a body.
_PLAIN = {"204": "opted out (Sec-GPC): nothing read or set", "304": "not modified (If-None-Match)"}


def _param(
    name: str,
    schema: dict[str, Any],
    where: str = "query",
    *,
    required: bool = False,
    desc: str = "",
) -> dict[str, Any]:
    out = {"name": name, "in": where, "required": required or where == "path", "schema": schema}
    if desc:
        out["description"] = desc
    return out


def _int(lo: int, hi: int, default: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "minimum": lo, "maximum": hi}
    if default is not None:
        out["default"] = default
    return out


def _op(
    summary: str,
    tag: str,
    *,
    params: Iterable[dict[str, Any]] = (),
    body: dict[str, Any] | None = None,
    media: str = _JSON,
    ok: str = "200",
    auth: str | None = None,
    errors: Iterable[str] = ("400",),
    returns: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "success"}}
    if returns is not None:
        responses[ok]["content"] = {_JSON: {"schema": returns}}
    codes = set(errors) | ({"400"} if body is not None else set())
    if auth:
        codes |= {"401", "403"}
    for code in sorted(codes):
        if code in _PLAIN:
            responses[code] = {"description": _PLAIN[code]}
        else:
            responses[code] = _problem(_ERRORS[code])
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "parameters": list(params),
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
    if auth:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Bearer token with role {auth} (or admin)."
    return op


_KEY = _param("key", s.SLUG, "path", desc="experiment key")
_DLQ_ID = _param("id", s.string(DLQ_ID_RE), "path", desc="dead-letter entry id")
_SKU = _param("sku", s.SKU, "path")
_RULE = _param("name", s.SLUG, "path", desc="merchandising rule name")
_WHEN = _param("when", {"type": "string"}, desc=str(merch_schemas.WHEN["description"]))
_ADMIN = ("400", "404", "409", "503")
_EXP = ("400", "404", "409", "422", "503")
_USER = _param(
    "user",
    s.USER_ID,
    required=True,
    desc="the shopper (a service token, or trusted local mode); a browser sends the shopper "
    "cookie instead",
)
# Only with a service token, or in trusted local mode (``p13n up``): no token needed there.
_OPTIONAL_AUTH: list[dict[str, list[str]]] = [{}, {"bearer": []}]

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/healthz", "get"): _op("Liveness: the process serves", "operations", errors=()),
    ("/readyz", "get"): _op(
        "Readiness: Redis answers within budget", "operations", errors=("503",)
    ),
    ("/metrics", "get"): _op("Prometheus metrics", "operations", errors=()),
    ("/openapi.json", "get"): _op("This document", "operations", errors=()),
    ("/v1/recommendations", "get"): {
        **_op(
            "Full per-user recommendations (degraded to the popular list when Redis is down)",
            "shoppers",
            params=[
                _param("route", s.SLUG_ANY_CASE),
                _param("k", _int(1, 100)),
                _param("user", s.USER_ID, desc="service token or trusted local mode only"),
            ],
            errors=("400", "401", "403"),
        ),
        "security": _OPTIONAL_AUTH,
    },
    ("/v1/segment-token", "get"): {
        **_op(
            "A fresh signed segment cookie for the shopper (204 when opted out)",
            "edges",
            params=[_USER],
            errors=("204", "400", "401", "403", "503"),
        ),
        "security": _OPTIONAL_AUTH,
    },
    ("/v1/segments/{hseg}/list", "get"): _op(
        "A segment list as edges cache it (ETag, CDN-Cache-Control, Cache-Tag)",
        "edges",
        params=[
            _param("hseg", s.HSEG, "path"),
            _param("variant", {**s.SLUG, "default": "control"}),
            _param("route", s.SLUG),
        ],
        errors=("304", "400", "404", "503"),
    ),
    ("/v1/edge/config", "get"): _op(
        "Experiments, segment registry, generations, item mask (ETag)",
        "edges",
        errors=("304", "503"),
    ),
    ("/v1/events", "post"): _op(
        "Collector: one event (400 with the reason when invalid, 422 for a rule no schema "
        "states) or a batch of up to 500 "
        "(202 with per-event results, invalid items rejected one by one); an opted-out "
        "request (Sec-GPC: 1 or the opt-out cookie) is 202 with opted_out: true and nothing "
        "stored. An erased shopper's event is refused.",
        "events",
        params=[
            _param(
                "site_key",
                {"type": "string"},
                desc="publishable site key, when the site requires one (403 without a known one)",
            )
        ],
        body=EVENTS_REF,
        ok="202",
        errors=("400", "403", "413", "422", "429", "503"),
    ),
    ("/v1/sdk/p13n.js", "get"): _op(
        "Browser snippet: batches Event v1 and sends them with navigator.sendBeacon (ETag)",
        "events",
        errors=("304",),
    ),
    ("/v1/schemas/events", "get"): _op(
        "The Event v1 JSON Schema, for producers to validate before sending",
        "events",
        errors=("304",),
    ),
    ("/v1/edge/heartbeat", "post"): _op(
        "An edge reports config ETag and revision, applied purge ids and hit/stale/miss counts",
        "edges",
        body=s.heartbeat(),
        ok="204",
        auth="service",
        errors=("400", "413", "503"),
    ),
    ("/v1/admin/experiments", "post"): _op(
        "Create a draft experiment",
        "experiments",
        body=xs.experiment_create(),
        ok="201",
        auth="experimenter",
        errors=_EXP,
    ),
    ("/v1/admin/strategies", "get"): _op(
        "The named ranking strategies a variation may pick, with what each does",
        "experiments",
        auth="experimenter",
        errors=(),
    ),
    ("/v1/admin/holdout", "get"): _op(
        "The global holdout's share", "experiments", auth="experimenter", errors=("503",)
    ),
    ("/v1/admin/holdout", "put"): _op(
        "Set the share of shoppers in the global holdout (audited)",
        "experiments",
        body=xs.holdout(),
        auth="experimenter",
        errors=("409", "413", "503"),
    ),
    ("/v1/admin/holdout/results", "get"): _op(
        "The global holdout's counts per arm (holdout, personalized)",
        "experiments",
        auth="experimenter",
        errors=("503",),
    ),
    ("/v1/admin/experiments", "get"): _op(
        "List experiments",
        "experiments",
        params=[_param("status", {"type": "string"}, desc="only those of this status")],
        auth="experimenter",
        errors=("400", "503"),
    ),
    ("/v1/admin/experiments/{key}", "get"): _op(
        "Read one experiment", "experiments", params=[_KEY], auth="experimenter", errors=_ADMIN
    ),
    ("/v1/admin/experiments/{key}", "patch"): _op(
        "Update (coverage in place; new weights on a running experiment re-seed)",
        "experiments",
        params=[_KEY],
        body=xs.experiment_update(),
        auth="experimenter",
        errors=_EXP,
    ),
    ("/v1/admin/experiments/{key}/start", "post"): _op(
        "Start", "experiments", params=[_KEY], auth="experimenter", errors=_ADMIN
    ),
    ("/v1/admin/experiments/{key}/stop", "post"): _op(
        "Stop", "experiments", params=[_KEY], auth="experimenter", errors=_ADMIN
    ),
    ("/v1/admin/experiments/{key}/rollback", "post"): _op(
        "Restore an earlier version",
        "experiments",
        params=[_KEY],
        body=s.rollback(),
        auth="experimenter",
        errors=_EXP,
    ),
    ("/v1/admin/experiments/{key}/results", "get"): _op(
        "Per-variant metrics with fixed-horizon and always-valid intervals, Holm across "
        "treatments, sample-ratio check, daily cumulative lift",
        "experiments",
        params=[_KEY],
        auth="experimenter",
        errors=_ADMIN,
        returns=results_schema.results(),
    ),
    ("/v1/admin/invalidations", "post"): _op(
        "Invalidate tags (soft or hard): generations, mask, pub/sub, Cloudflare",
        "invalidations",
        body=merch_schemas.invalidation(),
        ok="202",
        auth="merchandiser",
        errors=(*_ADMIN, "422"),
    ),
    ("/v1/admin/invalidations", "get"): _op(
        "The purge log, newest first: who, when, what, soft or hard, scheduled for, status "
        "per live edge and time until the last one applied it",
        "invalidations",
        params=[_param("limit", _int(1, 200, 20)), _param("offset", _int(0, 999_999_999, 0))],
        auth="merchandiser",
        errors=_ADMIN,
    ),
    ("/v1/admin/rules", "post"): _op(
        "Create a merchandising rule (pin, boost, bury, block), now (201) or at `when` (202)",
        "rules",
        body=merch_schemas.merch_rule(),
        ok="201",
        auth="merchandiser",
        errors=(*_ADMIN, "422"),
    ),
    ("/v1/admin/rules", "get"): _op(
        "Every merchandising rule, with whether it is live now",
        "rules",
        auth="merchandiser",
        errors=_ADMIN,
    ),
    ("/v1/admin/rules/{name}", "get"): _op(
        "One merchandising rule", "rules", params=[_RULE], auth="merchandiser", errors=_ADMIN
    ),
    ("/v1/admin/rules/{name}", "delete"): _op(
        "Delete a merchandising rule, now or at `when` (202)",
        "rules",
        params=[
            _RULE,
            _param("when", {"type": "string"}, desc=str(merch_schemas.WHEN["description"])),
        ],
        auth="merchandiser",
        errors=(*_ADMIN, "422"),
    ),
    ("/v1/admin/invalidations/{id}", "get"): _op(
        "An invalidation and how many live edges applied it",
        "invalidations",
        params=[_param("id", {"type": "string"}, "path")],
        auth="merchandiser",
        errors=_ADMIN,
    ),
    ("/v1/admin/catalog", "post"): _op(
        "Bulk import: CSV (header sku,stock,price,category and optionally durable) or JSON "
        "Lines (one catalog entry with its sku per line); every row is checked before "
        "anything is written (400 naming the line, 422 for a sku listed twice)",
        "catalog",
        body=s.catalog_csv(),
        media="text/csv",
        auth="merchandiser",
        errors=(*_ADMIN, "413", "422"),
    ),
    ("/v1/admin/catalog", "get"): _op(
        "Search the catalog: case-insensitive prefix of the sku or of the name's words",
        "catalog",
        params=[
            _param("q", {"type": "string", "minLength": 1, "maxLength": 64}, required=True),
            _param("limit", _int(1, 100, 20)),
        ],
        auth="merchandiser",
        errors=_ADMIN,
    ),
    ("/v1/admin/catalog/{sku}", "put"): _op(
        "Create or replace one sku (going out of stock purges it hard)",
        "catalog",
        params=[_SKU],
        body=s.catalog_entry(),
        auth="merchandiser",
        errors=(*_ADMIN, "422"),
    ),
    ("/v1/admin/catalog/{sku}", "get"): _op(
        "Read one sku", "catalog", params=[_SKU], auth="merchandiser", errors=_ADMIN
    ),
    ("/v1/admin/shoppers/{id}", "delete"): _op(
        "Erase a shopper (features, DLQ entries, archive) and record a tombstone",
        "privacy",
        params=[_param("id", s.USER_ID, "path")],
        auth="admin",
        errors=_ADMIN,
    ),
    ("/v1/admin/audit", "get"): _op(
        "The audit log, newest first",
        "admin",
        params=[
            _param("limit", _int(1, 500, 50)),
            _param("before", s.string(ENTRY_ID_RE), desc="entry id cursor (next)"),
            _param("target", {"type": "string"}),
            _param("action", {"type": "string"}),
        ],
        auth="admin",
        errors=("400", "503"),
    ),
    ("/v1/admin/tokens", "get"): _op(
        "Each token's role, by fingerprint", "admin", auth="admin", errors=("400",)
    ),
    ("/v1/admin/pipeline", "get"): _op(
        "Pipeline health: lag per partition, DLQ depth, live edges, hit ratio and freshness",
        "operations",
        params=[_param("window_s", _int(60, 3600, 900), desc="history window, seconds")],
        auth="admin",
        errors=("400", "503"),
    ),
    ("/v1/admin/dlq", "get"): _op(
        "Dead letters, newest first: reason, field, source and a bounded preview of the original",
        "operations",
        params=[
            _param("limit", _int(1, MAX_LIMIT, 50)),
            _param("before", s.string(DLQ_ID_RE), desc="entry id cursor (next)"),
        ],
        auth="admin",
        errors=("400", "503"),
    ),
    ("/v1/admin/dlq/{id}", "get"): _op(
        "One dead letter's original bytes, whole (application/octet-stream, an attachment)",
        "operations",
        params=[_DLQ_ID],
        auth="admin",
        errors=("400", "404", "503"),
    ),
    ("/v1/admin/dlq/{id}/requeue", "post"): _op(
        "Re-validate a dead letter and append it to its partition stream (409 if still invalid)",
        "operations",
        params=[_DLQ_ID],
        auth="admin",
        errors=_ADMIN,
    ),
    ("/v1/admin/dlq/{id}", "delete"): _op(
        "Drop a dead letter for good (audited)",
        "operations",
        params=[_DLQ_ID],
        auth="admin",
        errors=_ADMIN,
    ),
    ("/v1/admin/backup", "get"): _op(
        "The admin state as one backup document", "admin", auth="admin", errors=("400", "503")
    ),
    ("/v1/admin/restore", "post"): _op(
        "Validate a backup document, then replace the admin state with it (audited)",
        "admin",
        body=xs.backup(),
        auth="admin",
        errors=(*_ADMIN, "413", "422"),
    ),
    ("/v1/bench/baseline", "get"): _op(
        "Benchmark baseline: one HGETALL (only with P13N_BENCH_BASELINE=1)",
        "operations",
        params=[_param("user", {"type": "string"})],
    ),
}
