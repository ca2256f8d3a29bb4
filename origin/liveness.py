"""Liveness and readiness: ``/healthz`` stays up; ``/readyz`` says whether Redis answers."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from origin.state import get_state

__all__ = ["routes"]


async def healthz(request: Request) -> Response:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: Request) -> Response:
    """Ready when the online store answers PING within the Redis budget."""
    state = get_state(request)
    if state.redis is None:
        return JSONResponse(
            {"ready": False, "redis": "not configured"},
            status_code=503,
            headers={"Cache-Control": "no-store"},
        )
    try:
        await asyncio.wait_for(state.redis.ping(), state.settings.redis_timeout_ms / 1000)
    except (RedisError, OSError, TimeoutError) as exc:
        return JSONResponse(
            {"ready": False, "redis": type(exc).__name__},
            status_code=503,
            headers={"Cache-Control": "no-store"},
        )
    return JSONResponse({"ready": True, "redis": "ok"}, headers={"Cache-Control": "no-store"})


def routes() -> list[BaseRoute]:
    """Health routes."""
    return [Route("/healthz", healthz), Route("/readyz", readyz)]
