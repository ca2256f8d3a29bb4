"""Long-lived clients and in-process state, opened in the app's lifespan (never globals)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis
from starlette.requests import Request

from origin.cloudflare import CloudflarePurger
from origin.guardrails import GuardrailCounter
from origin.metrics import Metrics
from origin.recommend.caches import ItemCaches
from origin.settings import Settings
from origin.snapshot import SnapshotHolder
from origin.store import Clock, Store
from segmenter.connection import connect
from segmenter.schema import Keys

__all__ = ["AppState", "get_state"]


@dataclass
class AppState:
    """What every endpoint may use: settings, the Redis pool, the HTTP client, key builders."""

    settings: Settings
    keys: Keys
    redis: aioredis.Redis | None
    http: httpx.AsyncClient
    metrics: Metrics
    store: Store
    snapshot: SnapshotHolder
    caches: ItemCaches
    clock: Clock
    cloudflare: CloudflarePurger | None = None
    guard: GuardrailCounter = field(default_factory=GuardrailCounter)  # flushed by a task
    # In-process bookkeeping owned by individual modules, by name.
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        clock: Clock = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> AppState:
        """Create the clients (connections are opened lazily by the pool)."""
        timeout_s = settings.redis_timeout_ms / 1000
        client = (
            connect(
                settings.redis_url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                health_check_interval=30,
                max_connections=256,
            )
            if settings.redis_url
            else None
        )
        if http is None:
            http = httpx.AsyncClient(
                timeout=httpx.Timeout(5.0), limits=httpx.Limits(max_connections=50)
            )
        metrics = metrics or Metrics()
        store = Store(
            client,
            budget_ms=settings.redis_timeout_ms,
            breaker_ms=settings.breaker_ms,
            metrics=metrics,
            clock=clock,
        )
        keys = Keys(settings.prefix)
        purger = None
        if settings.cloudflare_zone_id and settings.cloudflare_api_token:
            purger = CloudflarePurger(
                http,
                api_url=settings.cloudflare_api_url,
                zone_id=settings.cloudflare_zone_id,
                api_token=settings.cloudflare_api_token,
            )
        return cls(
            settings=settings,
            keys=keys,
            redis=client,
            http=http,
            metrics=metrics,
            store=store,
            snapshot=SnapshotHolder(
                store, keys, settings.refresh_ms, settings.holdout_share, settings.segment_key
            ),
            caches=ItemCaches(
                ttl_s=settings.item_cache_ttl_s, covis_ttl_s=settings.covis_cache_ttl_s
            ),
            clock=clock,
            cloudflare=purger,
        )

    async def close(self) -> None:
        """Close the clients."""
        await self.http.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def get_state(request: Request) -> AppState:
    """The app's state from a request."""
    state: AppState = request.app.state.p13n
    return state
