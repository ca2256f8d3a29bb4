"""Drive an ASGI app in-process: its lifespan, then httpx's ASGI transport (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette


@asynccontextmanager
async def app_client(
    app: Starlette, base_url: str = "http://origin.test"
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client bound to ``app`` with the app's lifespan running around it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
