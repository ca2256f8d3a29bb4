"""The purge log (merchandiser role): every invalidation, newest first, and where it stands.

``GET /v1/admin/invalidations?limit=&offset=`` pages the log newest first (``next_offset``
for the following page); ``GET /v1/admin/invalidations/{id}`` is one record. Each says who,
when, what (tags), soft or hard, when it was scheduled for, and per live edge (by the
heartbeats edges send) whether it has applied it: an edge has when the purge was pushed to
it (its id is among the heartbeat's ``applied_purges``) or when it pulled a config of the
invalidation's ``revision`` or newer (``config_revision``: the config version the
invalidation bumped carries its generations). Older edges report generations.

``applied_by`` keeps, per edge, the time of the first heartbeat the origin saw showing the
purge applied (recorded when the log or the record is read; an upper bound of the real
time, by one heartbeat interval); ``time_to_apply_ms`` is the latest of these for the live
edges minus ``created_ms``, once every live edge has applied it.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio.client import Pipeline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from origin.admin.base import ADMIN_BUDGET_S, now_ms, query
from origin.auth import require
from origin.errors import BadRequest, NotFound
from origin.state import AppState, get_state

__all__ = ["edge_status", "routes", "with_status"]

ROLES = ("merchandiser",)
MAX_LIMIT = 200


def _applied(edge: dict[str, Any], record: dict[str, Any]) -> bool:
    if record["id"] in edge.get("applied_purges", ()):
        return True  # pushed to the edge and applied
    revision = record.get("revision")
    if revision is not None and edge.get("config_revision", 0) >= revision:
        return True  # caught up by a pulled config that carries its generations
    seen = edge.get("generations", {})  # edges that report every generation they hold
    for t, (soft, hard) in record["generations"].items():
        have = seen.get(t, [0, 0])
        if have[0] < soft or have[1] < hard:
            return False
    return True


def _live(edges: dict[bytes, bytes], now: int, live_ms: int) -> list[dict[str, Any]]:
    docs = (orjson.loads(v) for v in edges.values())
    return [e for e in docs if now - e.get("received_ms", 0) <= live_ms]


def edge_status(
    record: dict[str, Any], edges: dict[bytes, bytes], now: int, live_ms: int
) -> dict[str, Any]:
    """How many live edges have applied the invalidation's generations (pure)."""
    live = _live(edges, now, live_ms)
    applied = sorted(e["edge_id"] for e in live if _applied(e, record))
    pending = sorted(e["edge_id"] for e in live if e["edge_id"] not in applied)
    return {"live": len(live), "applied": len(applied), "pending": pending}


def with_status(
    record: dict[str, Any], edges: dict[bytes, bytes], now: int, live_ms: int
) -> tuple[dict[str, Any], bool]:
    """The record with its per-edge status and state; whether ``applied_by`` grew (pure)."""
    if record.get("state") == "scheduled" and record.get("revision") is None:
        return {**record, "edges": {"live": 0, "applied": 0, "pending": []}}, False
    live = _live(edges, now, live_ms)
    applied_by: dict[str, int] = dict(record.get("applied_by") or {})
    grew = False
    per_edge = []
    for e in sorted(live, key=lambda e: e["edge_id"]):
        done = _applied(e, record)
        if done and e["edge_id"] not in applied_by:
            applied_by[e["edge_id"]] = int(e.get("received_ms", now))
            grew = True
        per_edge.append({"edge_id": e["edge_id"], "applied": done,
                         "applied_ms": applied_by.get(e["edge_id"]) if done else None})  # fmt: skip
    out = {**record, "applied_by": applied_by, "per_edge": per_edge}
    n_applied = sum(1 for p in per_edge if p["applied"])
    out["edges"] = {
        "live": len(live),
        "applied": n_applied,
        "pending": [p["edge_id"] for p in per_edge if not p["applied"]],
    }
    if not live:
        out["state"], out["time_to_apply_ms"] = "no-live-edges", None
    elif n_applied == len(live):
        last = max(p["applied_ms"] for p in per_edge)
        out["state"], out["time_to_apply_ms"] = "applied", max(0, last - record["created_ms"])
    else:
        out["state"], out["time_to_apply_ms"] = "propagating", None
    return out, grew


def _persist(p: Pipeline, key: str, records: list[dict[str, Any]]) -> None:
    for r in records:
        stored = {k: v for k, v in r.items() if k not in ("edges", "per_edge", "state",
                                                           "time_to_apply_ms")}  # fmt: skip
        p.hset(key, r["id"], orjson.dumps(stored))


async def _statuses(state: AppState, raws: list[bytes], edges: dict[bytes, bytes]
) -> list[dict[str, Any]]:  # fmt: skip
    now, live_ms = now_ms(state), state.settings.edge_live_s * 1000
    out, grown = [], []
    for raw in raws:
        rec, grew = with_status(orjson.loads(raw), edges, now, live_ms)
        out.append(rec)
        if grew:
            grown.append(rec)
    if grown:
        key = state.keys.invalidations
        await state.store.pipeline("purge_log_note", lambda p: _persist(p, key, grown),
                                   budget_s=ADMIN_BUDGET_S)  # fmt: skip
    return out


def _page(q: dict[str, str]) -> tuple[int, int]:
    limit, offset = q.get("limit", "20"), q.get("offset", "0")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", field="limit")
    if not offset.isdigit() or len(offset) > 9:
        raise BadRequest("offset must be a non-negative integer", field="offset")
    return int(limit), int(offset)


async def log(request: Request) -> Response:
    """``GET /v1/admin/invalidations``: a page of the log, newest first."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    limit, offset = _page(query(request, {"limit", "offset"}))
    keys = state.keys

    def build(p: Pipeline) -> None:
        p.hgetall(keys.invalidations)
        p.hgetall(keys.edges)

    records, edges = await state.store.pipeline("purge_log", build, budget_s=ADMIN_BUDGET_S)
    newest = sorted(records.values(), key=_created, reverse=True)
    page = await _statuses(state, newest[offset : offset + limit], edges)
    nxt = offset + limit if offset + limit < len(newest) else None
    doc = {"invalidations": page, "total": len(newest), "offset": offset, "limit": limit,
           "next_offset": nxt}  # fmt: skip
    return _json(doc)


def _created(raw: bytes) -> tuple[int, str]:
    rec = orjson.loads(raw)
    return int(rec.get("created_ms", 0)), str(rec.get("id", ""))


def _json(doc: Any) -> Response:
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def status(request: Request) -> Response:
    """``GET /v1/admin/invalidations/{id}``: the record, and applied by n of m live edges."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    inv_id = str(request.path_params["id"])
    keys = state.keys

    def build(p: Pipeline) -> None:
        p.hget(keys.invalidations, inv_id)
        p.hgetall(keys.edges)

    raw, edges = await state.store.pipeline("invalidation_status", build, budget_s=ADMIN_BUDGET_S)
    if raw is None:
        raise NotFound(f"no invalidation {inv_id!r}", field="id")
    return _json((await _statuses(state, [raw], edges))[0])


def routes() -> list[BaseRoute]:
    """Purge log routes."""
    return [
        Route("/v1/admin/invalidations", log, methods=["GET"]),
        Route("/v1/admin/invalidations/{id}", status, methods=["GET"]),
    ]
