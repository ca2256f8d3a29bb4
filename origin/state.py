"""Long-lived clients and in-process state, opened in the app's lifespan (never globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis
from starlette.requests import Request

from origin.settings import Settings
from segmenter.schema import Keys

__all__ = ["AppState", "get_state"]


@dataclass
class AppState:
    """What every endpoint may use: settings, the Redis pool, the HTTP client, key builders."""

    settings: Settings
    keys: Keys
    redis: aioredis.Redis | None
    http: httpx.AsyncClient
    # In-process caches and bookkeeping owned by individual modules, by name.
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings) -> AppState:
        """Create the clients (connections are opened lazily by the pool)."""
        timeout_s = settings.redis_timeout_ms / 1000
        client = (
            aioredis.Redis.from_url(
                settings.redis_url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                health_check_interval=30,
                max_connections=256,
            )
            if settings.redis_url
            else None
        )
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(5.0), limits=httpx.Limits(max_connections=50)
        )
        return cls(settings=settings, keys=Keys(settings.prefix), redis=client, http=http)

    async def close(self) -> None:
        """Close the clients."""
        await self.http.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def get_state(request: Request) -> AppState:
    """The app's state from a request."""
    state: AppState = request.app.state.p13n
    return state
