"""The global holdout (experimenter role): its share, and its counts for the results.

A share of shoppers, chosen by ``cache_keys.experiments.in_holdout`` (its own salt), always
gets the non-personal rail: the anonymous segment's list at the edges, the popular list at
the origin, and no experiment. Every rail then says ``{"p13n-holdout": "holdout"}`` or
``"personalized"`` in its ``variants``, and edges log exposures under that key, so the
processor counts the two arms like an experiment's and the cumulative lift of
personalization itself can be measured. The share starts as ``P13N_HOLDOUT_SHARE``; once
set here it is stored (audited, in the edge config at the next refresh). Raising it only
adds shoppers to the holdout; lowering it releases some.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio.client import Pipeline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys.experiments import HOLDOUT_ARMS, HOLDOUT_KEY
from origin.admin.base import audit, json_object, now_ms, transact
from origin.admin.results import read_counts
from origin.auth import require
from origin.body import read_json
from origin.errors import BadRequest
from origin.state import AppState, get_state

__all__ = ["routes"]

ROLES = ("experimenter",)
# the processor's counters per arm (``segmenter.aggregates``): what each letter counts
COUNTERS = {"x": "exposed", "c": "converted", "o": "orders", "r": "revenue_cents"}


def _json(doc: Any) -> Response:
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def _stored(state: AppState) -> dict[str, Any] | None:
    raw = await state.store.run("holdout", state.store.client.get(state.keys.holdout))
    return None if raw is None else dict(orjson.loads(raw))


def _shown(state: AppState, stored: dict[str, Any] | None) -> dict[str, Any]:
    if stored is None:
        stored = {"share": state.settings.holdout_share, "source": "setting"}
    return {"key": HOLDOUT_KEY, "arms": list(HOLDOUT_ARMS), "source": "admin", **stored}


async def get_holdout(request: Request) -> Response:
    """The holdout's share and where it comes from (the setting, or this API)."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    return _json(_shown(state, await _stored(state)))


async def put_holdout(request: Request) -> Response:
    """Set the share of shoppers in the holdout (0 ends it)."""
    state = get_state(request)
    caller = require(request, state.settings, ROLES)
    doc, _ = await read_json(request, state.settings.max_body_bytes)
    body = json_object(doc, {"share"}, {"share"})
    share = body["share"]
    if not isinstance(share, int | float) or isinstance(share, bool) or not 0 <= share <= 1:
        raise BadRequest("share must be a number from 0 to 1", field="share")
    record = {"share": float(share), "updated_ms": now_ms(state), "updated_by": caller.who}

    async def read(pipe: Pipeline) -> dict[str, Any] | None:
        raw = await pipe.get(state.keys.holdout)
        return None if raw is None else dict(orjson.loads(raw))

    def write(pipe: Pipeline, before: dict[str, Any] | None) -> None:
        pipe.set(state.keys.holdout, orjson.dumps(record))
        audit(pipe, state, caller, "holdout.set", "holdout", before=before, after=record)

    await transact(state, "holdout_set", [state.keys.holdout], read, write)
    return _json(_shown(state, record))


async def holdout_results(request: Request) -> Response:
    """The holdout's raw counts per arm (the results' statistics are the results API's)."""
    state = get_state(request)
    require(request, state.settings, ROLES)
    counts = await read_counts(state, HOLDOUT_KEY)
    arms = {
        arm: {name: int(counts.get(f"{letter}:{arm}", 0)) for letter, name in COUNTERS.items()}
        for arm in HOLDOUT_ARMS
    }
    shown = _shown(state, await _stored(state))
    return _json({"global_holdout": {**shown, "counts": arms}})


def routes() -> list[BaseRoute]:
    """Holdout routes."""
    return [
        Route("/v1/admin/holdout", get_holdout, methods=["GET"]),
        Route("/v1/admin/holdout", put_holdout, methods=["PUT"]),
        Route("/v1/admin/holdout/results", holdout_results, methods=["GET"]),
    ]
