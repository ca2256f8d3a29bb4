"""The Cloudflare Python Worker: thin I/O around the decision core (the only module that
imports ``workers`` or ``js``).

``GET /p13n/v1/rail/{route}?k=`` is answered here; every other request is forwarded to the
origin. Per request: the edge config (kept per isolate, refreshed in the background after its
max-age, read from the optional ``EDGE_CONFIG`` KV namespace on a cold start, where a copy
older than its max-age never counts as fresh), then
``decide``; a fresh segment cookie from the origin when the shopper has none or it is near
expiry (small budget); the origin first for fully personal routes (route budget); else the
Cache API entry under the key's URL on the shop's own host, judged by the Worker's own
stored-at stamp (the Cache API ignores stale-while-revalidate):

    fresh    serve                                   Cache-Status detail=hit
    stale    serve, revalidate via ctx.waitUntil      detail=stale-while-revalidate
    expired  origin within budget, else serve stale   detail=miss / stale-if-error
    none     origin within budget, store, serve       detail=miss
    failed   the default list (config, else DEFAULT_ITEMS)  detail=default

Stored entries carry ``Cache-Tag`` (the origin's purge-by-tag reaches them) and never a
``Set-Cookie``; cookies go only on the per-shopper response. Exposures go to the collector in
one background POST per request at most. Nothing here logs a shopper id.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import js
from pyodide.ffi import JsException
from workers import Response, WorkerEntrypoint, fetch

from cache_keys.errors import CacheKeysError
from cache_keys.wire import (
    EdgeConfig,
    ListItem,
    SegmentList,
    parse_edge_config,
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
from edge.entry import decode_entry, encode_entry, entry_tags, stored_headers
from edge.freshness import State, freshness
from edge.plan import Plan, decide, serves_route, with_segment_grant
from edge.request import RequestParts, current_trace, rail_route, set_trace
from edge.settings import EdgeSettings, settings_from_env

__all__ = ["Default"]

CONFIG_PATH = "/v1/edge/config"
EVENTS_PATH = "/v1/events"
KV_CONFIG_KEY = "edge-config"
ENV_NAMES = (
    "ORIGIN_URL",
    "SEGMENT_KEYS",
    "CONTEXT_KEYS",
    "COLLECTOR_URL",
    "LOCALES",
    "DEFAULT_ITEMS",
    "ORIGIN_TIMEOUT_MS",
    "SEGMENT_REFRESH_MS",
    "SEGMENT_REFRESH_AHEAD_S",
    "CACHE_NAME",
    "COLLECTOR_SITE_KEY",
)


class OriginError(Exception):
    """The origin did not answer usably within its budget (status 0 when it never answered)."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"{what}: status {status}")
        self.status = status


@dataclass
class _Isolate:
    """What one isolate keeps between requests: settings and the last edge config."""

    settings: EdgeSettings | None = None
    config: EdgeConfig | None = None
    config_at_ms: int = 0
    refreshing: bool = False
    # Keys with a background revalidation under way: one per key however many requests
    # see the entry stale meanwhile.
    revalidating: set[str] = field(default_factory=set)


_ISOLATE = _Isolate()


def _now_ms() -> int:
    return int(js.Date.now())


async def _get_json(url: str, budget_ms: int, what: str, cookie: str = "") -> tuple[int, Any]:
    """GET ``url`` and decode its JSON within ``budget_ms``; ``OriginError`` otherwise."""
    headers = {"accept": "application/json"}
    if cookie:
        headers["cookie"] = cookie
    if trace := current_trace():
        headers["traceparent"] = trace

    async def go() -> tuple[int, Any]:
        resp = await fetch(url, headers=headers, signal=js.AbortSignal.timeout(budget_ms))
        if resp.status != 200:
            raise OriginError(resp.status, what)
        return resp.status, json.loads(await resp.text())

    try:
        return await asyncio.wait_for(go(), budget_ms / 1000)
    except OriginError:
        raise
    except (TimeoutError, OSError, ValueError, JsException) as exc:
        raise OriginError(0, what) from exc


class Default(WorkerEntrypoint):  # type: ignore[misc]
    """The Worker's entrypoint class."""

    async def fetch(self, request: Any) -> Any:
        """Answer a rail request at the edge; forward anything else to the origin."""
        url = urlsplit(request.url)
        route = rail_route(url.path)
        settings = self._settings()
        if route is None or request.method not in ("GET", "HEAD"):
            return await self._forward(request, settings, url.path, url.query)
        now = _now_ms()
        config = await self._config(settings, now)
        if not serves_route(config, route):
            return await self._forward(request, settings, url.path, url.query)
        parts = RequestParts.from_http(route, dict(request.headers.items()), url.query)
        trace = set_trace(parts.headers)
        plan = decide(parts, config, settings, now)
        if plan.segment_token_url and settings.segment_refresh_ms > 0:
            plan = await self._refresh_segment(plan, parts, config, settings, now)
        answer = await self._answer(plan, config, settings, url.netloc, now)
        # The default list shows no variant: logging an exposure would bias the results.
        batch = exposure_batch(plan, now, trace) if answer.tier != "default" else None
        if batch is not None:
            self.ctx.waitUntil(self._post_events(settings, batch))
        body = "" if request.method == "HEAD" else answer.body  # HEAD: the GET's headers only
        return Response(body, status=200, headers=response_headers(plan, answer))

    # -- settings and config -------------------------------------------------------------

    def _settings(self) -> EdgeSettings:
        if _ISOLATE.settings is None:
            env = {n: str(v) for n in ENV_NAMES if (v := getattr(self.env, n, None)) is not None}
            _ISOLATE.settings = settings_from_env(env)
        return _ISOLATE.settings

    async def _config(self, settings: EdgeSettings, now: int) -> EdgeConfig:
        iso = _ISOLATE
        if iso.config is None:
            iso.config, iso.config_at_ms = await self._cold_config(settings, now)
        elif now - iso.config_at_ms > iso.config.max_age_s * 1000 and not iso.refreshing:
            iso.refreshing = True
            self.ctx.waitUntil(self._refresh_config(settings))
        return iso.config

    async def _cold_config(self, settings: EdgeSettings, now: int) -> tuple[EdgeConfig, int]:
        """An isolate's first config and the time its age counts from.

        A KV document is as old as its ``generated_at_ms`` (never younger than that, or a
        copy from before a hard purge would pass for fresh): within its max-age it answers
        at once; older, the origin's is fetched first and the KV copy is only the fallback.
        """
        kv = await self._kv_config()
        kv_at = min(now, kv.generated_at_ms) if kv is not None else 0
        if kv is not None and now - kv_at <= kv.max_age_s * 1000:
            return kv, kv_at
        cfg = await self._origin_config(settings)
        if cfg is not None:
            return cfg, now
        if kv is not None:
            return kv, kv_at  # stale: the next request refreshes it in the background
        return EdgeConfig(etag="builtin", generated_at_ms=0), now

    async def _kv_config(self) -> EdgeConfig | None:
        kv = getattr(self.env, "EDGE_CONFIG", None)
        if kv is None:
            return None
        try:
            raw = await kv.get(KV_CONFIG_KEY)
            return parse_edge_config(json.loads(raw)) if raw else None
        except (ValueError, CacheKeysError, JsException):
            return None  # no usable copy: the origin's config, as without KV

    async def _origin_config(self, settings: EdgeSettings) -> EdgeConfig | None:
        try:
            _, doc = await _get_json(
                settings.origin_url + CONFIG_PATH, settings.origin_timeout_ms, "edge config"
            )
            return parse_edge_config(doc)
        except (OriginError, CacheKeysError):
            return None

    async def _refresh_config(self, settings: EdgeSettings) -> None:
        try:
            cfg = await self._origin_config(settings)
            if cfg is not None:
                _ISOLATE.config = cfg
                _ISOLATE.config_at_ms = _now_ms()
        finally:
            _ISOLATE.refreshing = False

    # -- the answer ----------------------------------------------------------------------

    async def _refresh_segment(
        self,
        plan: Plan,
        parts: RequestParts,
        config: EdgeConfig,
        settings: EdgeSettings,
        now: int,
    ) -> Plan:
        assert plan.segment_token_url is not None
        try:
            _, doc = await _get_json(
                plan.segment_token_url,
                settings.segment_refresh_ms,
                "segment token",
                plan.origin_cookie_header(),
            )
            grant = parse_segment_grant(doc)
        except (OriginError, CacheKeysError):
            return plan
        return with_segment_grant(
            plan, parts, grant=grant, config=config, settings=settings, now_ms=now
        )

    async def _answer(
        self, plan: Plan, config: EdgeConfig, settings: EdgeSettings, host: str, now: int
    ) -> Answer:
        name, mask = settings.cache_name, config.item_mask
        if plan.personal_url is not None:
            try:
                fwd_status, doc = await _get_json(
                    plan.personal_url,
                    plan.policy.origin_budget_ms,
                    "recommendations",
                    plan.origin_cookie_header(),
                )
                rail = parse_rail(doc)
                return answer_from_rail(
                    plan, rail.items, mask, cache_status(name, "origin", fwd_status=fwd_status)
                )
            except (OriginError, CacheKeysError):
                pass  # the segment list below is the fallback
        key_url = plan.key.url(host)
        cache = js.caches.default
        stored = await cache.match(key_url)
        entry = decode_entry(await stored.text()) if stored else None
        fresh = freshness(entry, plan.policy, config, now) if entry else None
        if entry is not None and fresh is not None:
            if fresh.state is State.FRESH:
                status = cache_status(name, "hit", ttl_s=fresh.ttl_s)
                return answer_from_list(plan, entry.seglist.items, mask, tier="hit", status=status)
            if fresh.state is State.STALE:
                if key_url not in _ISOLATE.revalidating:
                    _ISOLATE.revalidating.add(key_url)
                    self.ctx.waitUntil(self._revalidate(plan, config, settings, key_url))
                status = cache_status(
                    name, "stale", ttl_s=fresh.ttl_s, detail="stale-while-revalidate"
                )
                return answer_from_list(
                    plan, entry.seglist.items, mask, tier="stale", status=status
                )
        try:
            seglist = await self._fetch_list(plan, settings)
        except OriginError as exc:
            if entry is not None and fresh is not None and fresh.state is State.EXPIRED:
                status = cache_status(name, "stale", ttl_s=fresh.ttl_s, detail="stale-if-error")
                return answer_from_list(
                    plan, entry.seglist.items, mask, tier="stale", status=status, degraded=True
                )
            items: tuple[ListItem, ...] = config.default_items or settings.default_items
            status = cache_status(name, "default", fwd_status=exc.status or None)
            return answer_from_list(plan, items, mask, tier="default", status=status, degraded=True)
        self.ctx.waitUntil(self._store(plan, config, seglist, key_url))
        status = cache_status(name, "miss", fwd_status=200)
        return answer_from_list(plan, seglist.items, mask, tier="miss", status=status)

    async def _fetch_list(self, plan: Plan, settings: EdgeSettings) -> SegmentList:
        _, doc = await _get_json(plan.list_url, settings.origin_timeout_ms, "segment list")
        try:
            seglist = parse_segment_list(doc)
        except CacheKeysError as exc:
            raise OriginError(200, "segment list") from exc
        if seglist.hseg != plan.identity.hseg:
            raise OriginError(200, "segment list for another segment")
        return seglist

    async def _store(
        self, plan: Plan, config: EdgeConfig, seglist: SegmentList, key_url: str
    ) -> None:
        tags = entry_tags(plan.route, plan.identity.hseg, plan.experiment_keys, seglist)
        body = encode_entry(seglist, tags, config, _now_ms())
        stored = Response(body, status=200, headers=stored_headers(plan.policy, tags))
        await js.caches.default.put(key_url, stored.js_object)

    async def _revalidate(
        self, plan: Plan, config: EdgeConfig, settings: EdgeSettings, key_url: str
    ) -> None:
        try:
            seglist = await self._fetch_list(plan, settings)
            await self._store(plan, config, seglist, key_url)
        except OriginError:
            return  # keep serving the stale entry; the next request tries again
        finally:
            _ISOLATE.revalidating.discard(key_url)

    # -- side channels -------------------------------------------------------------------

    async def _post_events(self, settings: EdgeSettings, batch: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(
                fetch(
                    settings.collector_url + EVENTS_PATH,
                    method="POST",
                    body=json.dumps(batch, separators=(",", ":")),
                    headers=settings.event_headers(),
                ),
                settings.origin_timeout_ms / 1000,
            )
        except (TimeoutError, OSError, JsException):
            return  # exposures are best effort; the next request logs them again

    async def _forward(self, request: Any, settings: EdgeSettings, path: str, query: str) -> Any:
        target = settings.origin_url + path + (f"?{query}" if query else "")
        try:
            return await fetch(js.Request.new(target, request.js_object))
        except (OSError, JsException):
            body = json.dumps({"type": "about:blank", "title": "origin unavailable", "status": 502})
            return Response(body, status=502, headers={"content-type": "application/problem+json"})
