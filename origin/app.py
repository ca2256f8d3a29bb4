"""The Starlette app factory: routes from each module, clients opened in the lifespan.

Each feature module exposes ``routes() -> list[BaseRoute]``; this file only assembles them,
installs the one problem+json error translation, the timing/access-log middleware, and owns
the lifespan (clients, the first snapshot load, the background snapshot refresher).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from origin import (
    admin,
    baseline,
    collector,
    console,
    feeds,
    guardrails,
    kv,
    liveness,
    metrics,
    openapi,
    sdk,
    storefront,
)
from origin.admin.scheduler import run as schedule_run
from origin.errors import EXCEPTION_HANDLERS, OriginError, handle_origin_error, handle_unexpected
from origin.metrics import AccessLogMiddleware, Metrics
from origin.recommend import endpoint as recommend
from origin.routing import Endpoint, merge_methods
from origin.settings import Settings
from origin.state import AppState
from origin.store import Clock

__all__ = ["create_app"]


def _routes(settings: Settings) -> list[BaseRoute]:
    out = [
        *liveness.routes(),
        *metrics.routes(),
        *openapi.routes(),
        *recommend.routes(),
        *feeds.routes(),
        *collector.routes(),
        *sdk.routes(),
        *admin.routes(),
        *console.routes(),
        *storefront.routes(),
    ]
    if settings.bench_baseline:
        out += baseline.routes()
    return out


class OriginApp(Starlette):
    """Starlette, with the hot shopper endpoints' GETs answered before the routing and
    middleware stack.

    Profiled under load, the stack (three middleware layers, the route scan, the endpoint
    wrappers) cost as much per request as a whole one-HGETALL answer. A hot GET gets the same
    answer, error translation (problem+json; a 500 for anything unexpected, re-raised for the
    server's log) and the same request metric and access-log line; every other method (HEAD,
    the 405s) and every other path goes through the stack as before.
    """

    def __init__(self, *, hot: dict[str, Endpoint], metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot = hot
        self.access = AccessLogMiddleware(self.router, metrics)  # its ``record`` only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch (see the class docstring)."""
        endpoint = None
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            endpoint = self.hot.get(scope["path"])
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        start = time.perf_counter()
        scope["app"] = self
        request = Request(scope, receive)
        unexpected = None
        try:
            response = await endpoint(request)
        except OriginError as exc:
            response = await handle_origin_error(request, exc)
        except Exception as exc:  # as Starlette's ServerErrorMiddleware: answer, then raise
            response, unexpected = await handle_unexpected(request, exc), exc
        await response(scope, receive, send)
        self.access.record(scope, scope["path"], response.status_code, len(response.body), start)
        if unexpected is not None:
            raise unexpected


def create_app(settings: Settings, *, clock: Clock = time.time) -> Starlette:
    """Build the origin app for ``settings``; ``clock`` (epoch seconds) is a test seam."""
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = AppState.open(settings, metrics=app_metrics, clock=clock)
        app.state.p13n = state
        with contextlib.suppress(Exception):  # Redis may be down at start: degrade, not die
            await state.snapshot.refresh()
        refresher = asyncio.create_task(state.snapshot.run(), name="p13n-snapshot")
        publisher = kv.publisher_for(state)  # the edge config in Workers KV, when configured
        scheduler = asyncio.create_task(
            schedule_run(state, state.snapshot.stop, settings.schedule_tick_ms / 1000),
            name="p13n-scheduler",
        )
        flusher = asyncio.create_task(
            guardrails.run(state, state.guard, state.snapshot.stop), name="p13n-guardrails"
        )
        tasks = [refresher]
        if publisher is not None:
            state.extras["kv_publisher"] = publisher
            tasks.append(asyncio.create_task(publisher.run(), name="p13n-kv-publisher"))
        try:
            yield
        finally:
            state.snapshot.stop.set()
            if publisher is not None:
                publisher.stop.set()
                _, pending = await asyncio.wait(tasks[1:], timeout=5)
                for task in pending:  # a write stuck past its timeouts: stop it
                    task.cancel()
            # Cancel until the task ends (bounded): a cancel that lands inside a client call
            # can be consumed there (redis-py 8.1 on Python 3.11); the stop event ends the
            # loop in any case.
            # A job the scheduler claimed is let finish (bounded): cancelled mid-way it would
            # stay claimed and never be applied.
            await asyncio.wait({scheduler, flusher}, timeout=5)  # the last flush too
            for task in (refresher, scheduler, flusher):  # the scheduler stops on the same event
                for _ in range(25):
                    if task.done():
                        break
                    task.cancel()
                    await asyncio.wait({task}, timeout=0.2)
            await state.close()

    return OriginApp(
        hot=recommend.hot_routes(),
        metrics=app_metrics,
        routes=merge_methods(_routes(settings)),
        middleware=[Middleware(AccessLogMiddleware, metrics=app_metrics)],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
