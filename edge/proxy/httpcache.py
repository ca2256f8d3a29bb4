"""The shared HTTP cache for proxied (non-personalization) content.

GET (and HEAD, answered as GET without the body) flow: look up the variant the request
selects; fresh -> hit; within stale-while-revalidate -> serve stale and revalidate in the
background; otherwise validate with the stored ETag / Last-Modified (a 304 freshens the
stored entry), or fetch. When the origin fails, stale-if-error serves the stored response if
its headers allow it. Unsafe methods pass through and invalidate the stored target (RFC 9111
§4.4). Every answer carries an RFC 9211 ``Cache-Status`` saying what happened.

Collapsing: concurrent misses of one URL (or validations of one stored variant) make one
origin request. A waiter uses the answer only if a shared cache could have served it to it
from storage: storable as the first request asked for it (not private, no-store, for an
Authorization or with Set-Cookie) and selected by the waiter's own values of the headers its
Vary names. Otherwise the waiter asks the origin itself (an origin error is not retried by
the waiters: they answer stale-if-error or 502). So no one gets another's private answer or
another language's variant, and the origin still sees one request per shareable answer.

Purges: every stored response records the (soft, hard) generation of each of its Cache-Tag
tags and of ``*`` in the edge config current when it was stored; a later config (pushed, or
pulled after a missed push) with a higher hard generation makes it a miss, a higher soft one
makes it stale (served under stale-while-revalidate if allowed, else validated).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

from cache_keys.wire import ALL_TAG
from edge.freshness import purged
from edge.proxy.breaker import CircuitBreaker
from edge.proxy.cachecontrol import ResponseDirectives
from edge.proxy.collapse import Collapser
from edge.proxy.freshness import (
    Freshness,
    Timing,
    classify,
    current_age,
    freshness_lifetime,
    http_date,
    storable,
    usable_on_error,
)
from edge.proxy.store import ResponseStore, StoredResponse, selecting_values, vary_names
from edge.proxy.upstream import BadTarget, OriginUnavailable, Upstream, UpstreamResponse
from edge.proxy.urls import normalize_target

__all__ = ["CACHE_NAME", "Answer", "HttpCache", "forwardable_headers", "problem_answer"]

CACHE_NAME = "p13n-edge"
PROBLEM_TYPE_BASE = "https://p13n.invalid/problems/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Request headers forwarded to the origin. Everything else (X-Forwarded-Host, Forwarded,
# X-Original-URL and friends) is dropped: unkeyed headers must not change what gets cached.
FORWARD_ALLOW = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "authorization",
        "cache-control",
        "content-type",
        "cookie",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-unmodified-since",
        "origin",
        "pragma",
        "range",
        "sec-gpc",
        "traceparent",
        "tracestate",
        "user-agent",
    }
)
_CONDITIONALS = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since")


def forwardable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The subset of request headers the origin gets, plus ``Via``."""
    out = {k: v for k, v in headers.items() if k in FORWARD_ALLOW}
    out["via"] = f"1.1 {CACHE_NAME}"
    return out


@dataclass
class Answer:
    """What the proxy sends back."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cache_status: str

    def with_headers(self) -> list[tuple[str, str]]:
        return [*self.headers, ("cache-status", self.cache_status)]


@dataclass
class Counters:
    hit: int = 0
    stale: int = 0
    miss: int = 0
    revalidated: int = 0
    error: int = 0
    passed: int = 0
    stored: int = 0
    unshared: int = 0  # waiters that fetched on their own: the answer was not shareable


class Fetched(NamedTuple):
    """An origin answer, and what a shared cache may store of it as its request asked for it
    (None: nothing; the answer is for that request alone)."""

    resp: UpstreamResponse
    entry: StoredResponse | None


Generations = Mapping[str, tuple[int, int]]


def _no_generations() -> Generations:
    return {}


@dataclass
class HttpCache:
    """RFC 9111 shared cache in front of ``upstream``."""

    upstream: Upstream
    store: ResponseStore
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    clock: Callable[[], float] = time.time
    wait_timeout_s: float = 10.0
    counters: Counters = field(default_factory=Counters)
    collapser: Collapser[Fetched] = field(default_factory=Collapser)
    # The edge config's current (soft, hard) generations by tag (pushed and pulled purges).
    generations: Callable[[], Generations] = _no_generations
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Answer:
        """Answer one request; ``headers`` have lowercased names. A HEAD is answered as its
        GET (the sender leaves the body out)."""
        path_qs = normalize_target(target)
        try:
            if method in ("GET", "HEAD"):
                return await self._get(path_qs, headers)
            return await self._pass_through(method, path_qs, headers, body)
        except BadTarget:
            self.counters.error += 1
            return problem_answer(
                400, "bad-target", "Bad request target", "the target cannot be forwarded"
            )

    async def _get(self, path_qs: str, headers: Mapping[str, str]) -> Answer:
        primary = f"GET {path_qs}"
        stored = self.store.lookup(primary, headers)
        if stored is None:
            return await self._miss(primary, path_qs, headers)
        soft, hard = purged(stored.generations, self.generations())
        if hard:
            self.store.invalidate(primary)
            return await self._miss(primary, path_qs, headers)
        now = self.clock()
        age = current_age(stored.timing, now)
        state = classify(
            stored.directives,
            0.0 if soft else stored.lifetime,
            age,
            request_cache_control=headers.get("cache-control"),
        )
        if state is Freshness.FRESH:
            self.counters.hit += 1
            return self._from_store(
                stored, age, headers, f"{CACHE_NAME}; hit; ttl={int(stored.lifetime - age)}"
            )
        if state is Freshness.STALE_REVALIDATE:
            self.counters.stale += 1
            self._revalidate_in_background(primary, path_qs, headers, stored)
            return self._from_store(
                stored, age, headers, f"{CACHE_NAME}; hit; fwd=stale; detail=stale-while-revalidate"
            )
        return await self._validate(primary, path_qs, headers, stored, age)

    # -- paths ------------------------------------------------------------------------------
    async def _pass_through(
        self, method: str, path_qs: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        self.counters.passed += 1
        try:
            resp = await self.upstream.fetch(method, path_qs, forwardable_headers(headers), body)
        except OriginUnavailable:
            self.counters.error += 1
            return _bad_gateway(f"{CACHE_NAME}; fwd=bypass; detail=origin-unavailable")
        if method not in SAFE_METHODS and 200 <= resp.status < 400:
            self._invalidate_after_unsafe(path_qs, resp)
        return Answer(resp.status, resp.headers, resp.body, f"{CACHE_NAME}; fwd=bypass")

    async def _miss(self, primary: str, path_qs: str, headers: Mapping[str, str]) -> Answer:
        self.counters.miss += 1
        try:
            fetched, own = await self._fetch_collapsed(primary, path_qs, headers, None)
        except (OriginUnavailable, TimeoutError):
            self.counters.error += 1
            return _bad_gateway(f"{CACHE_NAME}; fwd=uri-miss; detail=origin-unavailable")
        resp = fetched.resp
        status = f"{CACHE_NAME}; fwd=uri-miss; fwd-status={resp.status}"
        if own:
            status += "; stored" if self._maybe_store(primary, fetched.entry) else ""
        else:
            status += "; collapsed"
        return _client_answer(resp.status, resp.headers, resp.body, headers, status)

    async def _validate(
        self,
        primary: str,
        path_qs: str,
        headers: Mapping[str, str],
        stored: StoredResponse,
        age: float,
    ) -> Answer:
        try:
            fetched, own = await self._fetch_collapsed(primary, path_qs, headers, stored)
        except (OriginUnavailable, TimeoutError):
            fetched, own = None, False
        resp = fetched.resp if fetched is not None else None
        if resp is None or resp.status >= 500:
            if usable_on_error(stored.directives, stored.lifetime, age):
                self.counters.stale += 1
                return self._from_store(
                    stored, age, headers, f"{CACHE_NAME}; hit; fwd=stale; detail=stale-if-error"
                )
            self.counters.error += 1
            if resp is None:
                return _bad_gateway(f"{CACHE_NAME}; fwd=stale; detail=origin-unavailable")
            return Answer(
                resp.status,
                resp.headers,
                resp.body,
                f"{CACHE_NAME}; fwd=stale; fwd-status={resp.status}",
            )
        if resp.status == 304:
            self.counters.revalidated += 1
            fresh = self._freshen(primary, stored, resp)
            return self._from_store(
                fresh,
                current_age(fresh.timing, self.clock()),
                headers,
                f"{CACHE_NAME}; fwd=stale; fwd-status=304",
            )
        self.counters.miss += 1
        assert fetched is not None
        if own and not self._maybe_store(primary, fetched.entry):
            self.store.invalidate(primary)
        return _client_answer(
            resp.status,
            resp.headers,
            resp.body,
            headers,
            f"{CACHE_NAME}; fwd=stale; fwd-status={resp.status}",
        )

    # -- origin -----------------------------------------------------------------------------
    async def _fetch_collapsed(
        self, primary: str, path_qs: str, headers: Mapping[str, str], stored: StoredResponse | None
    ) -> tuple[Fetched, bool]:
        """The origin's answer for this request, and whether this request fetched it (False:
        it shares another's fetch, which is stored already)."""
        fwd = {k: v for k, v in forwardable_headers(headers).items() if k not in _CONDITIONALS}
        if stored is not None:
            if (etag := stored.header("etag")) is not None:
                fwd["if-none-match"] = etag
            if (lm := stored.header("last-modified")) is not None:
                fwd["if-modified-since"] = lm

        async def fetch() -> Fetched:
            if not self.breaker.allow():
                raise OriginUnavailable("circuit open")
            try:
                resp = await self.upstream.fetch("GET", path_qs, fwd)
            except OriginUnavailable:
                self.breaker.record_failure()
                raise
            except BaseException:
                self.breaker.abandon()  # no verdict on the origin (bad target, cancelled)
                raise
            self.breaker.record_status(resp.status)
            return Fetched(resp, self._entry(headers, resp))

        fetched, joined = await self.collapser.run_or_join(
            _collapse_key(primary, stored), fetch, self.wait_timeout_s
        )
        if not joined or _shareable(fetched, headers, stored):
            return fetched, not joined
        if fetched.resp.status >= 500:  # the origin failed: waiters do not retry it
            raise OriginUnavailable(f"origin answered {fetched.resp.status}")
        self.counters.unshared += 1
        return await fetch(), True

    def _revalidate_in_background(
        self, primary: str, path_qs: str, headers: Mapping[str, str], stored: StoredResponse
    ) -> None:
        key = _collapse_key(primary, stored)
        if not self.collapser.claim(key):
            return

        async def run() -> None:
            try:
                fetched, own = await self._fetch_collapsed(primary, path_qs, headers, stored)
            except (OriginUnavailable, TimeoutError, BadTarget):
                return
            finally:
                self.collapser.release(key)
            resp = fetched.resp
            if resp.status == 304:
                self._freshen(primary, stored, resp)
            elif own and resp.status < 500 and not self._maybe_store(primary, fetched.entry):
                self.store.invalidate(primary)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- storage ----------------------------------------------------------------------------
    def _entry(self, headers: Mapping[str, str], resp: UpstreamResponse) -> StoredResponse | None:
        d = ResponseDirectives.from_headers(
            resp.header_values("cache-control"), resp.header_values("cdn-cache-control")
        )
        date = http_date(resp.header("date"))
        lifetime = freshness_lifetime(d, date, resp.header("expires"))
        ok, _ = storable(
            method="GET",
            status=resp.status,
            request_cache_control=headers.get("cache-control"),
            request_has_authorization="authorization" in headers,
            directives=d,
            vary=resp.header("vary"),
            has_set_cookie=resp.header("set-cookie") is not None,
            lifetime=lifetime,
        )
        if not ok or lifetime is None:
            return None
        age_raw = resp.header("age")
        tags = frozenset(
            t.strip().lower()
            for v in resp.header_values("cache-tag")
            for t in v.split(",")
            if t.strip()
        )
        return StoredResponse(
            status=resp.status,
            headers=resp.headers,
            body=resp.body,
            timing=Timing(
                resp.request_time,
                resp.response_time,
                date,
                int(age_raw) if age_raw and age_raw.isdigit() else 0,
            ),
            directives=d,
            lifetime=lifetime,
            vary=selecting_values(vary_names(resp.header("vary")), headers),
            tags=tags,
            generations=self._generations_of(tags),
        )

    def _generations_of(self, tags: frozenset[str]) -> dict[str, tuple[int, int]]:
        """The current generations of ``*`` and ``tags``, recorded with a stored response."""
        current = self.generations()
        return {t: current.get(t, (0, 0)) for t in (ALL_TAG, *tags)}

    def _maybe_store(self, primary: str, entry: StoredResponse | None) -> bool:
        if entry is None or not self.store.put(primary, entry):
            return False
        self.counters.stored += 1
        return True

    def _freshen(
        self, primary: str, stored: StoredResponse, resp: UpstreamResponse
    ) -> StoredResponse:
        """RFC 9111 §4.3.4: update stored headers from a 304 and restart its age."""
        updates = {k for k, _ in resp.headers}
        merged = [(k, v) for k, v in stored.headers if k not in updates] + resp.headers
        d = ResponseDirectives.from_headers(
            [v for k, v in merged if k == "cache-control"],
            [v for k, v in merged if k == "cdn-cache-control"],
        )
        date = http_date(next((v for k, v in merged if k == "date"), None))
        lifetime = freshness_lifetime(d, date, next((v for k, v in merged if k == "expires"), None))
        fresh = StoredResponse(
            status=stored.status,
            headers=merged,
            body=stored.body,
            timing=Timing(resp.request_time, resp.response_time, date, 0),
            directives=d,
            lifetime=lifetime if lifetime is not None else 0.0,
            vary=stored.vary,
            tags=stored.tags,
            generations=self._generations_of(stored.tags),
        )
        self.store.put(primary, fresh)
        return fresh

    def _invalidate_after_unsafe(self, path_qs: str, resp: UpstreamResponse) -> None:
        self.store.invalidate(f"GET {path_qs}")
        for name in ("location", "content-location"):
            value = resp.header(name)
            if not value:
                continue
            parts = urlsplit(value)
            base = urlsplit(self.upstream.base_url)
            if parts.netloc and parts.netloc != base.netloc:
                continue  # RFC 9111 §4.4: only same-origin URIs
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            self.store.invalidate(f"GET {normalize_target(target)}")

    def _from_store(
        self, stored: StoredResponse, age: float, headers: Mapping[str, str], cache_status: str
    ) -> Answer:
        out = [(k, v) for k, v in stored.headers if k != "age"]
        out.append(("age", str(max(0, int(age)))))
        return _client_answer(stored.status, out, stored.body, headers, cache_status)


def _client_answer(
    status: int,
    resp_headers: list[tuple[str, str]],
    body: bytes,
    req_headers: Mapping[str, str],
    cache_status: str,
) -> Answer:
    """Answer 304 when the client's If-None-Match matches, else the full response."""
    inm = req_headers.get("if-none-match")
    etag = next((v for k, v in resp_headers if k == "etag"), None)
    if status == 200 and inm and etag and etag in {t.strip() for t in inm.split(",")}:
        return Answer(
            304,
            [(k, v) for k, v in resp_headers if k not in ("content-encoding", "content-type")],
            b"",
            cache_status,
        )
    return Answer(status, resp_headers, body, cache_status)


def _collapse_key(primary: str, stored: StoredResponse | None) -> str:
    """Misses of a URL collapse together; validations only with others of the same stored
    variant (a 304 speaks for the validators sent, which are that variant's)."""
    if stored is None:
        return primary
    return f"{primary} {stored.vary!r}"


def _shareable(fetched: Fetched, headers: Mapping[str, str], stored: StoredResponse | None) -> bool:
    """Whether a waiter may use another request's answer: what a shared cache could have
    served it from storage."""
    if stored is not None and fetched.resp.status == 304:
        return True  # validated the very variant this waiter selected (the key says so)
    entry = fetched.entry
    if entry is None:
        return False  # not storable as its own request asked: that request's alone
    return entry.vary == selecting_values((name for name, _ in entry.vary), headers)


def problem_answer(
    status: int, slug: str, title: str, detail: str, cache_status: str = ""
) -> Answer:
    """An RFC 9457 problem answered by the edge (never stored)."""
    body = json.dumps(
        {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    ).encode()
    headers = [("content-type", "application/problem+json"), ("cache-control", "no-store")]
    return Answer(status, headers, body, cache_status or f"{CACHE_NAME}; fwd=bypass")


def _bad_gateway(cache_status: str) -> Answer:
    detail = "the origin could not be reached"
    return problem_answer(502, "origin-unavailable", "Bad gateway", detail, cache_status)
