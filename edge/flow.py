"""The one rail flow of both edges, sans-I/O: every decision of ``GET /p13n/v1/rail/{route}``.

The Cloudflare Worker (``edge.worker``: JS fetch, the Cache API, ``ctx.waitUntil``) and the
self-hosted edge (``edge.proxy.rails``: httpx with a breaker and collapsing, the byte store, a
task set) each give ``RailFlow.answer`` three small ports (``Ports``) and nothing else::

    plan = decide(request, config, settings, now)         (the decision core)
    segment cookie missing or near expiry -> ask the origin for one (small budget)
    fully personal route -> the origin's own rail within the route budget, else below
    entry fresh                   -> serve                         detail=hit
    entry stale                   -> serve, revalidate once per key  detail=stale-while-revalidate
    entry expired or none         -> the origin's list; store; serve  detail=miss
    origin failed, entry expired  -> serve the entry               detail=stale-if-error
    origin failed, nothing stored -> the default list              detail=default
    exposures -> one background post (never for the default list: it shows no variant)

Never a 5xx: every exception on the way (the cache's, the origin's, a bug in the core) ends
in the stale entry or the default list, with ``Cache-Status`` saying why (see
``edge.cache_status``), and is logged by its kind and place only: never its message, which
might quote a shopper id.

One rule for each edge: an origin answer that is not the document asked for (invalid JSON, a
list of another segment) is ``OriginError(200)`` (``fwd-status=200``: the origin answered);
any exception of the origin port falls back like an ``OriginError``; a stale entry is
revalidated once per cache key at a time, however many requests see it stale.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cache_keys.errors import CacheKeysError
from cache_keys.wire import (
    EdgeConfig,
    ListItem,
    MerchRule,
    RoutePolicy,
    SegmentList,
    active_rules,
    parse_rail,
    parse_segment_grant,
    parse_segment_list,
)
from edge.answer import (
    Answer,
    answer_from_list,
    answer_from_rail,
    exposure_batch,
    has_exposures,
    plain_default_answer,
    response_headers,
)
from edge.cache_status import (
    CACHE_ERROR,
    CORE_ERROR,
    DEFAULT,
    HIT,
    MISS,
    ORIGIN,
    STALE,
    STALE_IF_ERROR,
    STALE_WHILE_REVALIDATE,
    cache_status,
)
from edge.entry import Entry, entry_tags, make_entry, stored_headers
from edge.errors import OriginError
from edge.freshness import State, freshness
from edge.plan import Plan, decide, with_segment_grant
from edge.ports import EntryCache, Origin, Ports, RailReply, StoredEntry, get_json
from edge.request import RequestParts, current_trace, set_trace
from edge.settings import EdgeSettings

__all__ = ["RailFlow", "log_fault"]

log = logging.getLogger("p13n.edge.flow")

RENDERED_MAX = 4096


def log_fault(stage: str, exc: BaseException) -> None:
    """Log an exception of the rail flow by kind and place, never by message (a message
    might quote a shopper id or a cookie)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
    log.error("rail flow fault in %s: %s at %s", stage, type(exc).__name__, where)


@dataclass
class RailFlow:
    """The rail flow of one edge process (or Worker isolate): settings, the clock, and what
    it keeps between requests (keys under revalidation, rendered context-free answers)."""

    settings: EdgeSettings
    clock_ms: Callable[[], int]
    revalidations: int = 0  # background revalidations started
    faults: int = 0  # exceptions turned into a fallback answer
    _revalidating: set[str] = field(default_factory=set)
    # Rendered context-free answers: nothing per shopper. One per (key, k), with the stamp it
    # was made for (entry, config, mask and rules); another stamp replaces it. Keyed by the
    # whole stamp, dead answers (every config and every entry refresh makes all of them dead)
    # stayed until the dict held 4,096 (~0.7 KB each), filling for the first ~40 min.
    # Cleared when full (LRU bookkeeping on every hit costs more than a re-render).
    _rendered: dict[tuple[str, int], tuple[tuple[int, str, int], str]] = field(default_factory=dict)

    async def answer(
        self, route: str, headers: Mapping[str, str], query: str, config: EdgeConfig, ports: Ports
    ) -> RailReply:
        """The answer to one rail request; ``headers`` by lower-case name. Never raises."""
        now = self.clock_ms()
        trace = set_trace(headers)
        try:
            parts = RequestParts.from_http(route, headers, query, lowercase_names=True)
            plan = decide(parts, config, self.settings, now)
        except Exception as exc:
            return self.last_resort(route, config, exc)
        try:
            if plan.segment_token_url and self.settings.segment_refresh_ms > 0:
                plan = await self._refresh_segment(plan, parts, config, now, ports.origin)
            answer = await self._answer(plan, config, now, ports)
            # The default list shows no variant: logging an exposure would bias the results.
            # The batch is built in the background: the shopper does not wait for its ids.
            if answer.tier != DEFAULT and has_exposures(plan):
                ports.background.spawn(
                    self._exposures(plan, now, trace, answer.degraded, ports.origin)
                )
            return RailReply(answer, response_headers(plan, answer))
        except Exception as exc:
            return self._default_after(plan, config, exc)

    # -- the answer ---------------------------------------------------------------------------
    async def _answer(self, plan: Plan, config: EdgeConfig, now: int, ports: Ports) -> Answer:
        name, mask = self.settings.cache_name, config.item_mask
        rules = active_rules(config.rules, route=plan.route, hseg=plan.identity.hseg, now_ms=now)
        if plan.personal_url is not None:
            rail = await self._personal(plan, ports.origin)
            if rail is not None:
                return answer_from_rail(
                    plan, rail, mask, cache_status(name, ORIGIN, fwd_status=200)
                )
        fault = None
        try:
            entry = await ports.cache.get(plan.key)
        except Exception as exc:
            self._fault("cache read", exc)
            entry, fault = None, CACHE_ERROR
        fresh = freshness(entry, plan.policy, config, now) if entry is not None else None
        if entry is not None and fresh is not None:
            if fresh.state is State.FRESH:
                status = cache_status(name, HIT, ttl_s=fresh.ttl_s)
                return self._from_entry(plan, entry, config, (HIT, status), rules)
            if fresh.state is State.STALE:
                self._revalidate(plan, config, ports)
                status = cache_status(name, STALE, ttl_s=fresh.ttl_s, detail=STALE_WHILE_REVALIDATE)
                return self._from_entry(plan, entry, config, (STALE, status), rules)
        try:
            seglist = await self._fetch_list(plan, ports.origin)
        except Exception as exc:
            if not isinstance(exc, OriginError):
                self._fault("origin", exc)
            fwd = (exc.status or None) if isinstance(exc, OriginError) else None
            if entry is not None and fresh is not None and fresh.state is State.EXPIRED:
                status = cache_status(
                    name, STALE, ttl_s=fresh.ttl_s, detail=STALE_IF_ERROR, fault=fault
                )
                return answer_from_list(
                    plan, entry.seglist.items, mask, tier=STALE, status=status, degraded=True,
                    rules=rules,
                )  # fmt: skip
            status = cache_status(name, DEFAULT, fwd_status=fwd, fault=fault)
            return self._default_list(plan, config, status, rules)
        if self._empty_with_default(seglist, config):
            status = cache_status(name, DEFAULT, fwd_status=200, fault=fault)
            return self._default_list(plan, config, status, rules)
        if not await self._store(plan, config, seglist, ports.cache):
            fault = CACHE_ERROR
        status = cache_status(name, MISS, fwd_status=200, fault=fault)
        return answer_from_list(plan, seglist.items, mask, tier=MISS, status=status, rules=rules)

    def _empty_with_default(self, seglist: SegmentList, config: EdgeConfig) -> bool:
        """An empty list (a cold start, say) while a non-empty default exists: answered with
        the default and never stored, so it cannot be served as a hit (or stale) later."""
        return not seglist.items and bool(config.default_items or self.settings.default_items)

    def _from_entry(
        self,
        plan: Plan,
        entry: Entry,
        config: EdgeConfig,
        served: tuple[str, str],
        rules: tuple[MerchRule, ...],
    ) -> Answer:
        """A served entry's answer (``served`` is its tier and Cache-Status). Without a context
        cookie the answer is the same for every shopper of the key, so it is rendered once per
        (key, k, entry, config, mask, live rules: a rule's window opens within one config)."""
        tier, status = served
        mask, items = config.item_mask, entry.seglist.items
        if plan.identity.context is not None:
            return answer_from_list(plan, items, mask, tier=tier, status=status, rules=rules)
        slot, stamp = (
            (plan.key.path, plan.k),
            (entry.stored_at_ms, config.etag, hash((mask, rules))),
        )
        memo = self._rendered.get(slot)
        if memo is None or memo[0] != stamp:
            answer = answer_from_list(plan, items, mask, tier=tier, status=status, rules=rules)
            if memo is None and len(self._rendered) >= RENDERED_MAX:
                self._rendered.clear()
            self._rendered[slot] = (stamp, answer.body)
            return answer
        return Answer(memo[1], tier, status)

    def _default_list(
        self, plan: Plan, config: EdgeConfig, status: str, rules: tuple[MerchRule, ...] = ()
    ) -> Answer:
        items: tuple[ListItem, ...] = config.default_items or self.settings.default_items
        return answer_from_list(
            plan, items, config.item_mask, tier=DEFAULT, status=status, degraded=True, rules=rules
        )

    # -- faults -------------------------------------------------------------------------------
    def _fault(self, stage: str, exc: BaseException) -> None:
        self.faults += 1
        log_fault(stage, exc)

    def _default_after(self, plan: Plan, config: EdgeConfig, exc: Exception) -> RailReply:
        """The default list after a fault of the core (or of the flow around it)."""
        self._fault("rail answer", exc)
        status = cache_status(self.settings.cache_name, DEFAULT, fault=CORE_ERROR)
        try:
            answer = self._default_list(plan, config, status)
            return RailReply(answer, response_headers(plan, answer))
        except Exception as again:
            return self.last_resort(plan.route, config, again)

    def last_resort(self, route: str, config: EdgeConfig, exc: Exception) -> RailReply:
        """The default list as it is, when not even a plan can be trusted."""
        self._fault("decision", exc)
        items = config.default_items or self.settings.default_items
        policy = config.routes.get(route) or RoutePolicy(route)
        status = cache_status(self.settings.cache_name, DEFAULT, fault=CORE_ERROR)
        answer = plain_default_answer(items, policy.k, status)
        return RailReply(answer, response_headers(None, answer))

    async def _exposures(
        self, plan: Plan, now: int, trace: str, degraded: bool, origin: Origin
    ) -> None:
        try:
            batch = exposure_batch(plan, now, trace, degraded=degraded)
            if batch is not None:
                await origin.post_events(batch)
        except Exception as exc:
            self._fault("exposures", exc)

    # -- origin -------------------------------------------------------------------------------
    async def _personal(self, plan: Plan, origin: Origin) -> tuple[Any, ...] | None:
        """The origin's own rail for a fully personal route; None to fall back to the list."""
        assert plan.personal_url is not None
        cookie = plan.origin_cookie_header()
        try:
            doc = await get_json(
                origin, plan.personal_url, plan.policy.origin_budget_ms, "recommendations", cookie
            )
            return parse_rail(doc).items
        except (OriginError, CacheKeysError):
            return None
        except Exception as exc:
            self._fault("origin", exc)
            return None

    async def _fetch_list(self, plan: Plan, origin: Origin) -> SegmentList:
        doc = await get_json(origin, plan.list_url, self.settings.origin_timeout_ms, "segment list")
        try:
            seglist = parse_segment_list(doc)
        except CacheKeysError as exc:
            raise OriginError(200, "segment list") from exc
        if seglist.hseg != plan.identity.hseg:
            raise OriginError(200, "segment list for another segment")
        return seglist

    async def _refresh_segment(
        self, plan: Plan, parts: RequestParts, config: EdgeConfig, now: int, origin: Origin
    ) -> Plan:
        assert plan.segment_token_url is not None
        try:
            doc = await get_json(
                origin,
                plan.segment_token_url,
                self.settings.segment_refresh_ms,
                "segment token",
                plan.origin_cookie_header(),
            )
            grant = parse_segment_grant(doc)
        except (OriginError, CacheKeysError):
            return plan
        except Exception as exc:
            self._fault("origin", exc)
            return plan
        return with_segment_grant(
            plan, parts, grant=grant, config=config, settings=self.settings, now_ms=now
        )

    # -- storage and revalidation -------------------------------------------------------------
    async def _store(
        self, plan: Plan, config: EdgeConfig, seglist: SegmentList, cache: EntryCache
    ) -> bool:
        """Store the list under the plan's key; False (logged) when the cache failed."""
        try:
            tags = entry_tags(plan.route, plan.identity.hseg, plan.experiment_keys, seglist)
            entry, body = make_entry(seglist, tags, config, self.clock_ms())
            policy = plan.policy
            keep_s = policy.max_age_s + max(policy.swr_s, policy.sie_s)
            stored = StoredEntry(entry, body, tuple(tags), stored_headers(policy, tags), keep_s)
            await cache.put(plan.key, stored)
        except Exception as exc:
            self._fault("cache write", exc)
            return False
        return True

    def _revalidate(self, plan: Plan, config: EdgeConfig, ports: Ports) -> None:
        """Refresh a stale entry in the background, once per key at a time."""
        key = plan.key.path
        if key in self._revalidating:
            return
        self._revalidating.add(key)
        self.revalidations += 1
        ports.background.spawn(self._refresh(plan, config, ports, key, current_trace()))

    async def _refresh(
        self, plan: Plan, config: EdgeConfig, ports: Ports, key: str, trace: str
    ) -> None:
        # The request's trace, set again: a Worker's waitUntil runs the work outside the
        # request's context, so the context variable would be empty there.
        set_trace({"traceparent": trace})
        try:
            seglist = await self._fetch_list(plan, ports.origin)
            if not self._empty_with_default(seglist, config):
                await self._store(plan, config, seglist, ports.cache)
        except OriginError:
            return  # keep serving the stale entry; a later request tries again
        except Exception as exc:
            self._fault("revalidation", exc)
        finally:
            self._revalidating.discard(key)
