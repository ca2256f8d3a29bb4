"""The Starlette app factory: routes from each module, clients opened in the lifespan.

Each feature module exposes ``routes() -> list[BaseRoute]``; this file only assembles them,
installs the one problem+json error translation, and owns the lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from origin import collector, health
from origin.errors import EXCEPTION_HANDLERS
from origin.settings import Settings
from origin.state import AppState

__all__ = ["create_app"]


def _routes() -> list[BaseRoute]:
    return [*health.routes(), *collector.routes()]


def create_app(settings: Settings) -> Starlette:
    """Build the origin app for ``settings``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = AppState.open(settings)
        app.state.p13n = state
        try:
            yield
        finally:
            await state.close()

    return Starlette(
        routes=_routes(),
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
