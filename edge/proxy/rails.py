"""Personalization rails on the self-hosted edge: the same decisions as the Worker.

``decide`` plans the request; entries live in the shared response store under the plan's
cache key (the raw segment list with its tags and their generations, never anything per
shopper); fresh entries are served, stale ones served while one collapsed background fetch
revalidates them, expired or missing ones fetched from the origin within budget, and when the
origin fails the edge answers from a stale entry (stale-if-error) or the default list. Fully
personal routes go to the origin first. Exposures are posted to the collector in the
background. Nothing here logs or stores a shopper id.
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

from cache_keys.errors import CacheKeysError
from cache_keys.wire import (
    EdgeConfig,
    ListItem,
    SegmentList,
    parse_rail,
    parse_segment_grant,
    parse_segment_list,
)
from edge.answer import (
    Answer,
    answer_from_list,
    answer_from_rail,
    cache_status,
    exposure_batch,
    response_headers,
)
from edge.entry import Entry, decode_entry, entry_tags, make_entry, stored_headers
from edge.freshness import State, freshness
from edge.plan import Plan, decide, with_segment_grant
from edge.proxy.breaker import CircuitBreaker
from edge.proxy.cachecontrol import ResponseDirectives
from edge.proxy.collapse import Collapser
from edge.proxy.freshness import Timing
from edge.proxy.latency import LatencyHistogram
from edge.proxy.store import ResponseStore, StoredResponse
from edge.request import RequestParts, current_trace, set_trace
from edge.settings import EdgeSettings

__all__ = ["OriginError", "RailCounters", "RailService"]

log = logging.getLogger("p13n.edge.rails")

EVENTS_PATH = "/v1/events"
RENDERED_MAX = 4096


class OriginError(Exception):
    """The origin did not answer usably within its budget (status 0: no answer at all)."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"{what}: status {status}")
        self.status = status


def _entry_of(stored: StoredResponse) -> Entry | None:
    """The stored rail entry, decoded once when it was stored."""
    if isinstance(stored.parsed, Entry):
        return stored.parsed
    return decode_entry(stored.body.decode())


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
class RailService:
    """Answers ``GET /p13n/v1/rail/{route}`` from cache, origin, or the default list."""

    settings: EdgeSettings
    client: httpx.AsyncClient
    store: ResponseStore
    breaker: CircuitBreaker
    collapse_wait_s: float = 2.0
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    counters: RailCounters = field(default_factory=RailCounters)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    lists: Collapser[SegmentList] = field(default_factory=Collapser)
    # Rendered context-free answers by (key, k, entry stamp, mask): nothing per shopper.
    # A plain dict, cleared when full (a hit reads it on every request; LRU bookkeeping
    # would cost more than re-rendering the few keys that fall out).
    rendered: dict[tuple[str, int, int, int], str] = field(default_factory=dict)
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    origin_requests: int = 0  # list fetches, for the offload figures
    origin_bytes: int = 0
    _events_refused: bool = False
    # The bytes of each rendered context-free body (keyed by the body: the memo's values).
    _encoded_bodies: dict[str, bytes] = field(default_factory=dict)

    async def answer(
        self, route: str, headers: Mapping[str, str], query: str, config: EdgeConfig
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The full response (status, headers, body) to one rail request; ``headers`` by
        lower-case name, as ASGI hands them over."""
        now = self.clock_ms()
        trace = set_trace(headers)
        parts = RequestParts.from_http(route, headers, query, lowercase_names=True)
        plan = decide(parts, config, self.settings, now)
        if plan.segment_token_url and self.settings.segment_refresh_ms > 0:
            plan = await self._refresh_segment(plan, parts, config, now)
        answer = await self._answer(plan, config, now)
        self.counters.count(answer.tier)
        # The default list shows no variant: logging an exposure would bias the results.
        batch = exposure_batch(plan, now, trace) if answer.tier != "default" else None
        if batch is not None:
            self._spawn(self._post_events(batch))
        body = self._encoded_bodies.get(answer.body) if answer.tier == "hit" else None
        return 200, response_headers(plan, answer), body or answer.body.encode()

    async def _answer(self, plan: Plan, config: EdgeConfig, now: int) -> Answer:
        name, mask = self.settings.cache_name, config.item_mask
        if plan.personal_url is not None:
            try:
                code, doc = await self._get_json(
                    plan.personal_url,
                    plan.policy.origin_budget_ms,
                    "recommendations",
                    plan.origin_cookie_header(),
                )
                rail = parse_rail(doc)
                return answer_from_rail(
                    plan, rail.items, mask, cache_status(name, "origin", fwd_status=code)
                )
            except (OriginError, CacheKeysError):
                pass  # the segment list below is the fallback
        stored = self.store.lookup(plan.key.path, {})
        entry = _entry_of(stored) if stored is not None else None
        fresh = freshness(entry, plan.policy, config, now) if entry is not None else None
        if entry is not None and fresh is not None:
            if fresh.state is State.FRESH:
                status = cache_status(name, "hit", ttl_s=fresh.ttl_s)
                return self._from_entry(plan, entry, mask, "hit", status)
            if fresh.state is State.STALE:
                self._revalidate(plan, config)
                status = cache_status(
                    name, "stale", ttl_s=fresh.ttl_s, detail="stale-while-revalidate"
                )
                return self._from_entry(plan, entry, mask, "stale", status)
        try:
            seglist = await self._fetch_list(plan)
        except (OriginError, TimeoutError) as exc:
            if entry is not None and fresh is not None and fresh.state is State.EXPIRED:
                status = cache_status(name, "stale", ttl_s=fresh.ttl_s, detail="stale-if-error")
                return answer_from_list(
                    plan, entry.seglist.items, mask, tier="stale", status=status, degraded=True
                )
            items: tuple[ListItem, ...] = config.default_items or self.settings.default_items
            fwd = exc.status if isinstance(exc, OriginError) and exc.status else None
            status = cache_status(name, "default", fwd_status=fwd)
            return answer_from_list(plan, items, mask, tier="default", status=status, degraded=True)
        self._store(plan, config, seglist)
        return answer_from_list(
            plan,
            seglist.items,
            mask,
            tier="miss",
            status=cache_status(name, "miss", fwd_status=200),
        )

    def _from_entry(
        self, plan: Plan, entry: Entry, mask: frozenset[str], tier: str, status: str
    ) -> Answer:
        """A hit's answer. Without a context cookie the reranked body is the same for every
        shopper of the key, so it is rendered once per (key, k, entry, mask) and reused;
        with a context it is reranked per request."""
        if plan.identity.context is not None:
            return answer_from_list(plan, entry.seglist.items, mask, tier=tier, status=status)
        memo = (plan.key.path, plan.k, entry.stored_at_ms, hash(mask))
        body = self.rendered.get(memo)
        if body is None:
            answer = answer_from_list(plan, entry.seglist.items, mask, tier=tier, status=status)
            if len(self.rendered) >= RENDERED_MAX:
                self.rendered.clear()
                self._encoded_bodies.clear()
            self.rendered[memo] = answer.body
            self._encoded_bodies[answer.body] = answer.body.encode()
            return answer
        return Answer(body, tier, status)

    # -- origin -------------------------------------------------------------------------------
    async def _get_json(
        self, url: str, budget_ms: int, what: str, cookie: str = ""
    ) -> tuple[int, Any]:
        if not self.breaker.allow():
            raise OriginError(0, f"{what} (circuit open)")
        headers = {"accept": "application/json"}
        if cookie:
            headers["cookie"] = cookie
        if trace := current_trace():
            headers["traceparent"] = trace
        started = time.perf_counter()
        try:
            resp = await asyncio.wait_for(
                self.client.get(url, headers=headers, timeout=budget_ms / 1000), budget_ms / 1000
            )
        except (httpx.HTTPError, TimeoutError) as exc:
            self.breaker.record_failure()
            raise OriginError(0, what) from exc
        except BaseException:
            self.breaker.abandon()  # cancelled: no verdict on the origin
            raise
        self.latency.observe((time.perf_counter() - started) * 1000)
        self.origin_requests += 1
        self.origin_bytes += len(resp.content)
        self.breaker.record_status(resp.status_code)
        if resp.status_code != 200:
            raise OriginError(resp.status_code, what)
        try:
            return resp.status_code, resp.json()
        except ValueError as exc:
            raise OriginError(200, what) from exc

    async def _fetch_list(self, plan: Plan) -> SegmentList:
        async def fetch() -> SegmentList:
            _, doc = await self._get_json(
                plan.list_url, self.settings.origin_timeout_ms, "segment list"
            )
            try:
                seglist = parse_segment_list(doc)
            except CacheKeysError as exc:
                raise OriginError(200, "segment list") from exc
            if seglist.hseg != plan.identity.hseg:
                raise OriginError(200, "segment list for another segment")
            return seglist

        # One origin fetch per list however many keys and shoppers want it at once.
        return await self.lists.run(plan.list_url, fetch, self.collapse_wait_s)

    async def _refresh_segment(
        self, plan: Plan, parts: RequestParts, config: EdgeConfig, now: int
    ) -> Plan:
        assert plan.segment_token_url is not None
        try:
            _, doc = await self._get_json(
                plan.segment_token_url,
                self.settings.segment_refresh_ms,
                "segment token",
                plan.origin_cookie_header(),
            )
            grant = parse_segment_grant(doc)
        except (OriginError, CacheKeysError):
            return plan
        return with_segment_grant(
            plan, parts, grant=grant, config=config, settings=self.settings, now_ms=now
        )

    # -- storage and background work ----------------------------------------------------------
    def _store(self, plan: Plan, config: EdgeConfig, seglist: SegmentList) -> None:
        tags = entry_tags(plan.route, plan.identity.hseg, plan.experiment_keys, seglist)
        now = self.clock_ms()
        entry, text = make_entry(seglist, tags, config, now)
        body = text.encode()
        headers = list(stored_headers(plan.policy, tags).items())
        keep_s = plan.policy.max_age_s + max(plan.policy.swr_s, plan.policy.sie_s)
        self.store.put(
            plan.key.path,
            StoredResponse(
                status=200,
                headers=headers,
                body=body,
                timing=Timing(now / 1000, now / 1000, None, 0),
                directives=ResponseDirectives({}, targeted=True),
                lifetime=float(keep_s),
                tags=frozenset(tags),
                parsed=entry,
            ),
        )

    def _revalidate(self, plan: Plan, config: EdgeConfig) -> None:
        if not self.lists.claim(plan.list_url):
            return

        async def run() -> None:
            try:
                seglist = await self._fetch_list(plan)
            except (OriginError, TimeoutError):
                return  # keep serving the stale entry; a later request tries again
            finally:
                self.lists.release(plan.list_url)
            self._store(plan, config, seglist)

        self._spawn(run())

    async def _post_events(self, batch: dict[str, Any]) -> None:
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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background work (tests and shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
