"""Personalization rails on the self-hosted edge: the rail flow's adapters.

``edge.flow.RailFlow`` makes every decision (the Worker runs the same flow); this module
gives it the self-hosted edge's ports: the origin through httpx behind the circuit breaker,
with concurrent fetches of one shared URL collapsed into one; entries in the shared byte
store under the plan's cache key (the raw segment list with its tags and their generations,
never anything per shopper); background work in a task set drained at shutdown. Nothing
here logs or stores a shopper id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from cache_keys.keys import CacheKey
from cache_keys.wire import EdgeConfig
from edge.entry import Entry, decode_entry
from edge.errors import OriginError
from edge.flow import RailFlow
from edge.ports import Ports, StoredEntry
from edge.proxy.breaker import CircuitBreaker
from edge.proxy.cachecontrol import ResponseDirectives
from edge.proxy.collapse import Collapser
from edge.proxy.freshness import Timing
from edge.proxy.latency import LatencyHistogram
from edge.proxy.store import ResponseStore, StoredResponse
from edge.settings import EdgeSettings

__all__ = ["HttpxOrigin", "RailCounters", "RailService", "StoreEntries", "TaskSet"]

log = logging.getLogger("p13n.edge.rails")

EVENTS_PATH = "/v1/events"


@dataclass
class RailCounters:
    """Answers by tier, for metrics and heartbeats."""

    hit: int = 0
    stale: int = 0
    miss: int = 0
    origin: int = 0
    default: int = 0
    exposures_refused: int = 0  # exposure posts the collector answered 4xx/5xx

    def count(self, tier: str) -> None:
        setattr(self, tier, getattr(self, tier) + 1)

    def as_dict(self) -> dict[str, int]:
        """Answers by tier (heartbeats and metrics)."""
        return {
            "hit": self.hit,
            "stale": self.stale,
            "miss": self.miss,
            "origin": self.origin,
            "default": self.default,
        }


@dataclass
class HttpxOrigin:
    """The origin port: httpx within the budget, behind the breaker; requests without a
    cookie (segment lists: the same for every shopper) collapse per URL."""

    client: httpx.AsyncClient
    breaker: CircuitBreaker
    settings: EdgeSettings
    counters: RailCounters
    collapse_wait_s: float = 2.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    lists: Collapser[tuple[int, str]] = field(default_factory=Collapser)
    origin_requests: int = 0  # fetches that reached the origin, for the offload figures
    origin_bytes: int = 0  # their body bytes (the origin's egress to this edge)
    _events_refused: bool = False

    async def get(self, url: str, headers: Mapping[str, str], budget_ms: int) -> tuple[int, str]:
        """Status and body of ``GET url`` within ``budget_ms``."""
        if "cookie" in headers:
            return await self._get(url, headers, budget_ms)
        try:
            # One origin fetch per URL however many keys and shoppers want it at once.
            return await self.lists.run(
                url, lambda: self._get(url, headers, budget_ms), self.collapse_wait_s
            )
        except TimeoutError as exc:  # waited past collapse_wait_s, or the leader was cancelled
            raise OriginError(0, "collapsed fetch") from exc

    async def _get(self, url: str, headers: Mapping[str, str], budget_ms: int) -> tuple[int, str]:
        if not self.breaker.allow():
            raise OriginError(0, "origin (circuit open)")
        started = time.perf_counter()
        try:
            resp = await asyncio.wait_for(
                self.client.get(url, headers=headers, timeout=budget_ms / 1000), budget_ms / 1000
            )
        except (httpx.HTTPError, TimeoutError) as exc:
            self.breaker.record_failure()
            raise OriginError(0, "origin") from exc
        except BaseException:
            self.breaker.abandon()  # cancelled: no verdict on the origin
            raise
        self.latency.observe((time.perf_counter() - started) * 1000)
        self.origin_requests += 1
        self.origin_bytes += len(resp.content)
        self.breaker.record_status(resp.status_code)
        return resp.status_code, resp.text

    async def post_events(self, batch: dict[str, Any]) -> None:
        """One exposure batch to the collector; a refusal is counted and logged on change."""
        try:
            resp = await self.client.post(
                self.settings.collector_url + EVENTS_PATH,
                content=json.dumps(batch, separators=(",", ":")),
                headers=self.settings.event_headers(),
                timeout=self.settings.origin_timeout_ms / 1000,
            )
        except httpx.HTTPError:
            return  # best effort: the same ids are logged again on the next request
        refused = resp.status_code >= 400
        if refused:
            self.counters.exposures_refused += 1
        if refused != self._events_refused:  # log changes only, with the status alone
            self._events_refused = refused
            if refused:
                log.warning(
                    "the collector refuses exposure events (status %d): check "
                    "COLLECTOR_SITE_KEY and its rate limits",
                    resp.status_code,
                )
            else:
                log.info("the collector accepts exposure events again")


@dataclass
class StoreEntries:
    """The entry-cache port: rail entries in the shared byte store under the key's path."""

    store: ResponseStore

    async def get(self, key: CacheKey) -> Entry | None:
        """The stored entry (decoded once, when it was stored), or None."""
        stored = self.store.lookup(key.path, {})
        if stored is None:
            return None
        if isinstance(stored.parsed, Entry):
            return stored.parsed
        return decode_entry(stored.body.decode())

    async def put(self, key: CacheKey, stored: StoredEntry) -> None:
        """Store the entry, kept as long as it may be served (stale-if-error included)."""
        at_s = stored.entry.stored_at_ms / 1000
        self.store.put(
            key.path,
            StoredResponse(
                status=200,
                headers=list(stored.headers.items()),
                body=stored.body.encode(),
                timing=Timing(at_s, at_s, None, 0),
                directives=ResponseDirectives({}, targeted=True),
                lifetime=float(stored.keep_s),
                tags=frozenset(stored.tags),
                parsed=stored.entry,
            ),
        )


@dataclass
class TaskSet:
    """The background port: tasks kept until done, drained at shutdown."""

    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task of the running loop."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every task, including those spawned meanwhile."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


@dataclass
class RailService:
    """Answers ``GET /p13n/v1/rail/{route}`` through the rail flow with this edge's ports."""

    settings: EdgeSettings
    client: httpx.AsyncClient
    store: ResponseStore
    breaker: CircuitBreaker
    collapse_wait_s: float = 2.0
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    counters: RailCounters = field(default_factory=RailCounters)

    def __post_init__(self) -> None:
        self.flow = RailFlow(self.settings, self.clock_ms)
        self.origin = HttpxOrigin(
            self.client, self.breaker, self.settings, self.counters, self.collapse_wait_s
        )
        self.tasks = TaskSet()
        self.ports = Ports(self.origin, StoreEntries(self.store), self.tasks)

    @property
    def lists(self) -> Collapser[tuple[int, str]]:
        """The collapser of shared origin fetches (metrics)."""
        return self.origin.lists

    @property
    def latency(self) -> LatencyHistogram:
        """Origin latency of rail fetches (metrics)."""
        return self.origin.latency

    @property
    def origin_requests(self) -> int:
        """Rail fetches that reached the origin (the offload figures)."""
        return self.origin.origin_requests

    @property
    def origin_bytes(self) -> int:
        """Body bytes those fetches received."""
        return self.origin.origin_bytes

    async def answer(
        self, route: str, headers: Mapping[str, str], query: str, config: EdgeConfig
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The full response (status, headers, body) to one rail request; ``headers`` by
        lower-case name, as ASGI hands them over. Always a 200: the flow falls back."""
        reply = await self.flow.answer(route, headers, query, config, self.ports)
        answer = reply.answer
        self.counters.count(answer.tier)
        # Encoded per request (~0.13 us for a 0.7 KB body): a memo of the bytes by body kept
        # every shopper's reranked answer too, and held up to ~6 MB of bodies never reused.
        return 200, reply.headers, answer.body.encode()

    async def drain(self) -> None:
        """Wait for background work (tests and shutdown)."""
        await self.tasks.drain()
