"""Merchandising rules (merchandiser role): pin, boost, bury, block on the rails.

``POST /v1/admin/rules`` ``{"name": "spring", "kind": "pin", "skus": ["SKU-7"], "position": 1,
"routes": ["home"], "segments": ["new-dairy-mid"], "start_ms": …, "end_ms": …}`` creates one
(201; 202 with the job when ``when`` schedules it); ``GET /v1/admin/rules`` lists them;
``GET``/``DELETE /v1/admin/rules/{name}`` reads or removes one (``?when=`` schedules it).
(``/v1/admin/rules`` was free in the route table: experiment definition rules live in
``origin.admin.rules`` and have no route.)

Stored with segment names; the edge config carries them hashed
(``origin.snapshot.wire_rule``), so edges
see hsegs only. Every change is audited and then reaches edges like a soft purge: a soft
invalidation of the rule's routes (or of everything), which the purge log lists with its
per-edge status; edges pull the new rules with the config the purge makes them fetch.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio.client import Pipeline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys import hash_segment, tag
from cache_keys.errors import WireError
from cache_keys.wire import ALL_TAG, parse_rules
from cache_keys.wire._check import SLUG_RE
from origin.admin import schedule
from origin.admin.base import audit, json_object, now_ms, query, transact
from origin.admin.invalidations import invalidate
from origin.auth import Caller, require
from origin.body import read_json
from origin.errors import BadRequest, Conflict, NotFound, Unprocessable
from origin.state import AppState, get_state

__all__ = ["RULE_FIELDS", "apply_create", "apply_delete", "build_rule", "routes"]

ROLES = ("merchandiser",)
RULE_FIELDS = frozenset(
    {"name", "kind", "skus", "category", "routes", "segments", "position", "factor",
     "start_ms", "end_ms", "reason"}
)  # fmt: skip


def _window(body: dict[str, Any]) -> tuple[int | None, int | None]:
    start = schedule.parse_time(body["start_ms"], "start_ms") if body.get("start_ms") else None
    end = schedule.parse_time(body["end_ms"], "end_ms") if body.get("end_ms") else None
    if start is not None and end is not None and end <= start:
        raise Unprocessable("end_ms must be after start_ms", field="end_ms")
    return start, end


def _factor(kind: str, body: dict[str, Any]) -> float:
    factor = body.get("factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, int | float):
        raise BadRequest("factor must be a number", field="factor")
    if kind == "boost" and not 1 < factor <= 1000:
        raise Unprocessable("a boost's factor must be above 1 (at most 1000)", field="factor")
    if kind == "bury" and not 0 < factor < 1:
        raise Unprocessable("a bury's factor must be between 0 and 1", field="factor")
    if kind in ("pin", "block") and factor != 1:
        raise Unprocessable(f"a {kind} takes no factor", field="factor")
    return float(factor)


def build_rule(body: dict[str, Any], *, who: str, ms: int, seg_key: bytes) -> dict[str, Any]:
    """The stored rule from a request body (400/422 naming the field)."""
    names = body.get("segments", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise BadRequest("segments must be a list of segment names", field="segments")
    start, end = _window(body)
    kind = body.get("kind")
    factor = _factor(kind, body) if isinstance(kind, str) else 1.0
    record = {
        "name": body.get("name"),
        "kind": kind,
        "skus": body.get("skus", []),
        "category": body.get("category", ""),
        "routes": body.get("routes", []),
        "segments": list(dict.fromkeys(names)),
        "position": body.get("position", 1),
        "factor": factor,
        "start_ms": start,
        "end_ms": end,
    }
    skus, category = record["skus"], record["category"]
    if bool(skus) == bool(category) and isinstance(skus, list) and isinstance(category, str):
        raise Unprocessable("a rule targets either skus or a category", field="skus")
    try:  # the wire parser is the one definition of a valid rule
        parse_rules([{**record, "segments": [hash_segment(n, seg_key) for n in names]}])
    except WireError as exc:
        field = exc.field.removeprefix("rules[0].").split("[")[0]
        raise BadRequest(f"{field}: {exc}", field=field) from exc
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise BadRequest("reason must be a string of at most 500 characters", field="reason")
    return {**record, "reason": reason, "who": who, "created_ms": ms}


def purge_tags(rule: dict[str, Any]) -> list[str]:
    """What a change of ``rule`` purges softly: its routes, or everything."""
    return [tag("route", r) for r in rule["routes"]] or [ALL_TAG]


def _json(doc: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(doc), status, media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )  # fmt: skip


async def apply_create(state: AppState, caller: Caller, rule: dict[str, Any]) -> dict[str, Any]:
    """Store ``rule`` (409 when its name exists), audit it, purge softly; the outcome."""
    key = state.keys.merch_rules

    async def read(pipe: Pipeline) -> bool:
        return bool(await pipe.hexists(key, rule["name"]))

    def write(pipe: Pipeline, exists: bool) -> None:
        if exists:
            raise Conflict(f"rule {rule['name']!r} already exists", field="name")
        pipe.hset(key, rule["name"], orjson.dumps(rule))
        audit(pipe, state, caller, "rule.create", f"rule:{rule['name']}", before=None, after=rule)

    await transact(state, "rule_create", [key], read, write)
    return await _purge(state, caller, rule, "created")


async def apply_delete(state: AppState, caller: Caller, name: str) -> dict[str, Any]:
    """Remove rule ``name`` (404 when absent), audit it, purge softly; the outcome."""
    key = state.keys.merch_rules

    async def read(pipe: Pipeline) -> Any:
        return await pipe.hget(key, name)

    def write(pipe: Pipeline, raw: Any) -> dict[str, Any]:
        if raw is None:
            raise NotFound(f"no rule {name!r}", field="name")
        before: dict[str, Any] = orjson.loads(raw)
        pipe.hdel(key, name)
        audit(pipe, state, caller, "rule.delete", f"rule:{name}", before=before, after=None)
        return before

    before = await transact(state, "rule_delete", [key], read, write)
    return await _purge(state, caller, before, "deleted")


async def _purge(state: AppState, caller: Caller, rule: dict[str, Any], what: str
) -> dict[str, Any]:  # fmt: skip
    inv = await invalidate(state, caller, purge_tags(rule), [], mode="soft",
                           reason=f"merchandising rule {rule['name']} {what}")  # fmt: skip
    return {"rule": rule, "invalidation": inv["id"]}


async def create(request: Request) -> Response:
    """``POST /v1/admin/rules``: now, or at ``when`` (202 with the scheduled job)."""
    state = get_state(request)
    caller = require(request, state.settings, ROLES)
    doc, _ = await read_json(request, state.settings.max_body_bytes)
    body = json_object(doc, {*RULE_FIELDS, "when"}, {"name", "kind"})
    ms = now_ms(state)
    rule = build_rule(body, who=caller.who, ms=ms, seg_key=state.settings.segment_key)
    if "when" in body:
        due = schedule.parse_when(body["when"], ms)
        job = await schedule.enqueue(state, caller, "rule.create", {"rule": rule}, due)
        return _json({"scheduled": job}, 202)
    return _json(await apply_create(state, caller, rule), 201)


async def list_rules(request: Request) -> Response:
    """Every rule, by name, with whether it is live now."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    query(request, set())
    raw = await state.store.run("rules", state.store.client.hgetall(state.keys.merch_rules))
    ms = now_ms(state)
    docs = sorted((orjson.loads(v) for v in raw.values()), key=lambda d: d["name"])
    for d in docs:
        d["live"] = (d["start_ms"] or 0) <= ms and (d["end_ms"] is None or ms < d["end_ms"])
    return _json({"rules": docs})


def _name(request: Request) -> str:
    name = str(request.path_params["name"])
    if not SLUG_RE.fullmatch(name):
        raise BadRequest("name must be 1-40 characters of a-z, 0-9 and '-'", field="name")
    return name


async def get_rule(request: Request) -> Response:
    """One rule."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    query(request, set())
    name = _name(request)
    raw = await state.store.run("rule", state.store.client.hget(state.keys.merch_rules, name))
    if raw is None:
        raise NotFound(f"no rule {name!r}", field="name")
    return _json(orjson.loads(raw))


async def delete(request: Request) -> Response:
    """``DELETE /v1/admin/rules/{name}``: now, or at ``?when=`` (202 with the job)."""
    state = get_state(request)
    caller = require(request, state.settings, ROLES)
    q = query(request, {"when"})
    name = _name(request)
    if "when" in q:
        due = schedule.parse_when(q["when"], now_ms(state))
        job = await schedule.enqueue(state, caller, "rule.delete", {"name": name}, due)
        return _json({"scheduled": job}, 202)
    return _json(await apply_delete(state, caller, name))


def routes() -> list[BaseRoute]:
    """Merchandising rule routes."""
    return [
        Route("/v1/admin/rules", create, methods=["POST"]),
        Route("/v1/admin/rules", list_rules, methods=["GET"]),
        Route("/v1/admin/rules/{name}", get_rule, methods=["GET"]),
        Route("/v1/admin/rules/{name}", delete, methods=["DELETE"]),
    ]
