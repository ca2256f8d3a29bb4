"""The benchmark's baseline: one HGETALL and a small JSON, in the same app and middleware.

Mounted only with ``P13N_BENCH_BASELINE=1`` (``bench/origin.py``), so ``/v1/recommendations``
is compared with the cheapest possible Redis-backed endpoint under identical conditions.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys import is_shopper_id
from origin.errors import BadRequest
from origin.identity import identify
from origin.state import get_state

__all__ = ["routes"]


async def baseline(request: Request) -> Response:
    """One HGETALL of the shopper's scalar features."""
    state = get_state(request)
    shopper = identify(request, state.settings)
    if shopper.sid is None or not is_shopper_id(shopper.sid):
        raise BadRequest("user is required", field="user")
    fields = await state.store.run(
        "baseline", state.store.client.hgetall(state.keys.shopper(shopper.sid))
    )
    body = orjson.dumps({"known": bool(fields), "fields": len(fields)})
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


def routes() -> list[BaseRoute]:
    """The baseline route."""
    return [Route("/v1/bench/baseline", baseline, methods=["GET"])]
