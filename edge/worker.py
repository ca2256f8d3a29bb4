"""The Cloudflare Python Worker: the rail flow's adapters (the only module that imports
``workers`` or ``js``).

``GET /p13n/v1/rail/{route}?k=`` is answered by ``edge.flow.RailFlow`` (the decisions and
their fallbacks, shared with the self-hosted edge) through three adapters: JS ``fetch`` with
an abort signal for the origin, the Cache API (``caches.default``, keyed by the key's URL on
the shop's own host) for entries, and ``ctx.waitUntil`` for background work. Every other
request is forwarded to the origin. The edge config is kept per isolate, refreshed in the
background after its max-age, read from the optional ``EDGE_CONFIG`` KV namespace on a cold
start (a copy older than its max-age never counts as fresh); when it cannot be had at all
the built-in one decides (the default list).

Stored entries carry ``Cache-Tag`` (the origin's purge-by-tag reaches them) and never a
``Set-Cookie``; cookies go only on the per-shopper response. Nothing here logs a shopper id,
and no rail request is answered with a 5xx.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import js
from pyodide.ffi import JsException, to_js
from workers import Response, WorkerEntrypoint, fetch

from cache_keys.errors import CacheKeysError
from cache_keys.keys import CacheKey
from cache_keys.wire import PROBLEM_HEADERS, EdgeConfig, Problem, parse_edge_config
from edge.answer import plain_default_answer, response_headers
from edge.cache_status import CACHE_NAME, CONFIG_ERROR, DEFAULT, cache_status, forward_failed
from edge.entry import Entry, decode_entry
from edge.errors import OriginError, SettingsError
from edge.flow import RailFlow, log_fault
from edge.plan import serves_route
from edge.ports import Ports, StoredEntry, get_json
from edge.request import REQUEST_HEADERS, rail_route
from edge.settings import EdgeSettings, settings_from_env

__all__ = ["Default"]

log = logging.getLogger("p13n.edge.worker")

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


@dataclass
class _Isolate:
    """What one isolate keeps between requests: settings, the rail flow (its revalidations
    and rendered answers), and the last edge config."""

    settings: EdgeSettings | None = None
    flow: RailFlow | None = None
    config: EdgeConfig | None = None
    config_at_ms: int = 0
    refreshing: bool = False


_ISOLATE = _Isolate()


def _now_ms() -> int:
    return int(js.Date.now())


class _JsOrigin:
    """The origin through JS ``fetch``, bounded by an abort signal and the budget."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings

    async def get(self, url: str, headers: Mapping[str, str], budget_ms: int) -> tuple[int, str]:
        """Status and body of ``GET url`` within ``budget_ms``."""

        async def go() -> tuple[int, str]:
            signal = js.AbortSignal.timeout(budget_ms)
            resp = await fetch(url, headers=dict(headers), signal=signal)
            return resp.status, await resp.text()

        try:
            return await asyncio.wait_for(go(), budget_ms / 1000)
        except (TimeoutError, OSError, JsException) as exc:
            raise OriginError(0, "origin") from exc

    async def post_events(self, batch: dict[str, Any]) -> None:
        """One exposure batch to the collector; best effort (the next request logs again).

        JS ``fetch`` itself, bounded by an abort signal: the SDK's wrapper and
        ``asyncio.wait_for`` added tasks, timers and proxies to every request that logs."""
        s = self.settings
        init = {
            "method": "POST",
            "body": json.dumps(batch, separators=(",", ":")),
            "headers": list(s.event_headers().items()),
            "signal": js.AbortSignal.timeout(s.origin_timeout_ms),
        }
        try:
            await js.fetch(s.collector_url + EVENTS_PATH, _js_object(init))
        except (OSError, JsException):
            return


# A stored entry's body digest, in a header of its own: a hit whose body this isolate has
# decoded before is answered without reading the body across the JS/Python boundary (a
# 200-item list is ~30 KB to copy and hash on every request otherwise).
ENTRY_DIGEST = "x-p13n-entry-digest"
_ENTRIES: dict[str, Entry] = {}
_ENTRIES_MAX = 128  # decoded lists (routes x segments x variants an isolate serves)


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def _js_object(value: dict[str, Any]) -> Any:
    """A plain JS object (lists become arrays) in one conversion."""
    return to_js(value, dict_converter=js.Object.fromEntries)


# The headers every per-shopper answer without cookies starts with (``response_headers``):
# kept in one JS ``Headers`` per isolate whose Cache-Status is set per request, since a JS
# Response copies its init's headers when it is built (one JS call instead of converting a
# list of lists and a dict on every request).
_PLAIN_HEAD = (("content-type", "application/json"), ("cache-control", "private, no-store"))
_PLAIN_INIT: list[Any] = []  # [the init object, its Headers], built on first use


def _plain_init() -> tuple[Any, Any]:
    if not _PLAIN_INIT:
        js_headers = js.Headers.new(to_js([list(h) for h in _PLAIN_HEAD]))
        init = js.Object.new()
        init.status = 200
        init.headers = js_headers
        _PLAIN_INIT[:] = [init, js_headers]
    return _PLAIN_INIT[0], _PLAIN_INIT[1]


def _response(body: str, headers: list[tuple[str, str]]) -> Any:
    """A 200 JS Response, returned as it is: workerd takes a JS Response from ``fetch``, and
    the SDK's wrapper cost a Python object and a conversion per request."""
    if len(headers) == 3 and headers[2][0] == "cache-status" and tuple(headers[:2]) == _PLAIN_HEAD:
        init, js_headers = _plain_init()
        js_headers.set("cache-status", headers[2][1])
        return js.Response.new(body, init)
    return js.Response.new(body, _js_object({"status": 200, "headers": [list(h) for h in headers]}))


# Each key's URL on the shop's host (keys repeat across shoppers: building the URL checks
# the host with a regex on every request otherwise); cleared when full.
_URLS: dict[tuple[str, str], str] = {}
_URLS_MAX = 4096


def _key_url(key: CacheKey, host: str) -> str:
    memo = (key.path, host)
    url = _URLS.get(memo)
    if url is None:
        if len(_URLS) >= _URLS_MAX:
            _URLS.clear()
        url = _URLS[memo] = key.url(host)
    return url


class _CacheApi:
    """Entries in the Cache API under the key's URL on the shop's own host."""

    def __init__(self, host: str) -> None:
        self.host = host

    async def get(self, key: CacheKey) -> Entry | None:
        """The decoded entry, or None."""
        stored = await js.caches.default.match(_key_url(key, self.host))
        if not stored:
            return None
        digest = stored.headers.get(ENTRY_DIGEST)
        entry = _ENTRIES.get(digest) if isinstance(digest, str) else None
        if entry is None:
            body = await stored.text()
            entry = decode_entry(body)
            if entry is not None and digest == _digest(body):  # only a body that is its digest's
                if len(_ENTRIES) >= _ENTRIES_MAX:
                    _ENTRIES.clear()
                _ENTRIES[digest] = entry
        return entry

    async def put(self, key: CacheKey, stored: StoredEntry) -> None:
        """Store the entry's body with its Cache-Tag, lifetime and digest headers."""
        headers = {**stored.headers, ENTRY_DIGEST: _digest(stored.body)}
        resp = Response(stored.body, status=200, headers=headers)
        await js.caches.default.put(_key_url(key, self.host), resp.js_object)


class _WaitUntil:
    """Background work handed to ``ctx.waitUntil``."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Keep the isolate alive until ``work`` is done."""
        self.ctx.waitUntil(work)


def _unconfigured(exc: SettingsError) -> Any:
    """A rail's answer while the deploy's vars or secrets are unusable: an empty default
    list (there are no settings to take one from), never a 5xx; the log names the variable."""
    log.error("the Worker's settings are unusable: %s", exc)  # names the variable, no value
    status = cache_status(CACHE_NAME, DEFAULT, fault=CONFIG_ERROR)
    answer = plain_default_answer((), 0, status)
    return Response(answer.body, status=200, headers=response_headers(None, answer))


# Decides when no edge config could be had at all: default policies, the default list.
BUILTIN_CONFIG = EdgeConfig(etag="builtin", generated_at_ms=0)


class Default(WorkerEntrypoint):  # type: ignore[misc]
    """The Worker's entrypoint class."""

    async def fetch(self, request: Any) -> Any:
        """Answer a rail request at the edge; forward anything else to the origin."""
        url = urlsplit(request.url)
        route = rail_route(url.path)
        try:
            settings = self._settings()
        except SettingsError as exc:
            if route is None:
                raise
            return _unconfigured(exc)
        method = request.method  # (a JS property read each time it is named)
        if route is None or method not in ("GET", "HEAD"):
            return await self._forward(request, settings, url.path, url.query)
        try:
            config = await self._config(settings, _now_ms())
        except Exception as exc:  # KV or the origin failed oddly: decide with what there is
            log_fault("config", exc)
            config = _ISOLATE.config or BUILTIN_CONFIG
        if not serves_route(config, route):
            return await self._forward(request, settings, url.path, url.query)
        flow = _ISOLATE.flow
        assert flow is not None
        try:
            # Only the headers the rail flow reads, each one JS call: converting them all
            # (the SDK builds an email.message of every header) cost more than the decision.
            js_headers = request.js_object.headers
            # (a missing header is JS null, which is not None in this Pyodide)
            headers = {n: v for n in REQUEST_HEADERS if isinstance(v := js_headers.get(n), str)}
            ports = Ports(_JsOrigin(settings), _CacheApi(url.netloc), _WaitUntil(self.ctx))
            reply = await flow.answer(route, headers, url.query, config, ports)
        except Exception as exc:  # the adapters' own faults: still the default list
            reply = flow.last_resort(route, config, exc)
        body = "" if method == "HEAD" else reply.answer.body  # HEAD: the GET's headers
        return _response(body, reply.headers)

    # -- settings and config -------------------------------------------------------------

    def _settings(self) -> EdgeSettings:
        if _ISOLATE.settings is None:
            env = {n: str(v) for n in ENV_NAMES if (v := getattr(self.env, n, None)) is not None}
            _ISOLATE.settings = settings_from_env(env)
            _ISOLATE.flow = RailFlow(_ISOLATE.settings, _now_ms)
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
        return BUILTIN_CONFIG, now

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
        origin = _JsOrigin(settings)
        try:
            doc = await get_json(
                origin, settings.origin_url + CONFIG_PATH, settings.origin_timeout_ms, "config"
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

    # -- everything else -----------------------------------------------------------------

    async def _forward(self, request: Any, settings: EdgeSettings, path: str, query: str) -> Any:
        target = settings.origin_url + path + (f"?{query}" if query else "")
        try:
            return await fetch(js.Request.new(target, request.js_object))
        except (OSError, JsException):
            detail = "the origin could not be reached"
            problem = Problem(502, "origin-unavailable", "Bad gateway", detail)
            headers = [*PROBLEM_HEADERS, ("cache-status", forward_failed(settings.cache_name))]
            return Response(problem.encode().decode(), status=502, headers=headers)
