"""One self-hosted edge process's long-lived state: HTTP client, store, config, the shared
cache, the rail service, and the background loops (config refresh, purges, heartbeats)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from edge.proxy.breaker import CircuitBreaker
from edge.proxy.config import ConfigHolder
from edge.proxy.heartbeat import send_heartbeats
from edge.proxy.httpcache import NO_GENERATIONS, HttpCache
from edge.proxy.metrics import EdgeCollector, Traffic
from edge.proxy.planes import Planes
from edge.proxy.purges import PurgeStats, refresh_config, subscribe_purges
from edge.proxy.rails import RailService
from edge.proxy.settings import ProxySettings
from edge.proxy.store import ResponseStore
from edge.proxy.upstream import Upstream

__all__ = ["EdgeRuntime"]


@dataclass
class EdgeRuntime:
    """One edge process's long-lived state."""

    settings: ProxySettings
    client: httpx.AsyncClient
    store: ResponseStore
    config: ConfigHolder
    http: HttpCache
    rails: RailService | None
    # What the shopper port forwards (the admin plane: 404 unless the settings opt in).
    planes: Planes = field(default_factory=Planes)
    purges: PurgeStats = field(default_factory=PurgeStats)
    traffic: Traffic = field(default_factory=Traffic)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def open(cls, settings: ProxySettings, clock: Callable[[], float] = time.time) -> EdgeRuntime:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.proxy_timeout_ms / 1000),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        )
        store = ResponseStore(settings.cache_max_bytes)
        breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s)
        holder = ConfigHolder(client, settings.origin_url, clock=clock)
        http = HttpCache(
            upstream=Upstream(client, settings.origin_url, clock=clock),
            store=store,
            breaker=breaker,
            clock=clock,
            wait_timeout_s=settings.collapse_wait_ms / 1000,
            generations=lambda: holder.config.generations if holder.config else NO_GENERATIONS,
        )
        rails = None
        if settings.core is not None:
            rails = RailService(
                settings=settings.core,
                client=client,
                store=store,
                breaker=breaker,
                collapse_wait_s=settings.collapse_wait_ms / 1000,
                clock_ms=lambda: int(clock() * 1000),
            )
        planes = Planes(settings.forward_admin, settings.forward_prefixes)
        return cls(settings, client, store, holder, http, rails, planes)

    async def start(self) -> None:
        """Load the config and start the config refresher, the purge subscriber and the
        heartbeat."""
        await self.config.load()
        loop = asyncio.get_running_loop()
        s = self.settings
        self.tasks.append(loop.create_task(refresh_config(self.config, self.store, self.stopping)))
        if s.redis_url:
            self.tasks.append(
                loop.create_task(
                    subscribe_purges(
                        s.redis_url,
                        f"{s.redis_prefix}:purge",
                        config=self.config,
                        store=self.store,
                        stats=self.purges,
                        stop=self.stopping,
                    )
                )
            )
        if s.heartbeat_s > 0:
            self.tasks.append(loop.create_task(send_heartbeats(self)))

    async def close(self) -> None:
        self.stopping.set()
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=3)
        if self.rails is not None:
            await self.rails.drain()
        await self.client.aclose()

    def collector(self) -> EdgeCollector:
        return EdgeCollector(http=self.http, rails=self.rails, store=self.store, purges=self.purges,
                             traffic=self.traffic)  # fmt: skip

    def traffic_figures(self) -> dict[str, int]:
        """Traffic counters since start (heartbeats: the console's offload and egress)."""
        return self.collector().traffic_figures(time.time())

    def answer_counts(self) -> dict[str, int]:
        """Answers by tier, proxied and rails together (heartbeats)."""
        h = self.http.counters
        counts = {"hit": h.hit, "stale": h.stale, "miss": h.miss + h.revalidated, "error": h.error}
        if self.rails is not None:
            for tier, n in self.rails.counters.as_dict().items():
                counts[tier] = counts.get(tier, 0) + n
        return counts
