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

Purges: a stored response's recorded generations (``edge.proxy.storage``) against the
current config's (pushed, or pulled after a missed push): a higher hard generation makes it a
miss, a higher soft one makes it stale (served under stale-while-revalidate if allowed, else
validated).

This module is the flow; what is stored and shared is ``edge.proxy.storage``, what is
forwarded ``edge.proxy.forwarding``, and what is answered ``edge.proxy.answers``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from edge.cache_status import (
    CACHE_NAME,
    ORIGIN_UNAVAILABLE,
    STALE_IF_ERROR,
    STALE_WHILE_REVALIDATE,
    forward_failed,
)
from edge.freshness import purged
from edge.proxy.answers import Answer, bad_gateway, client_answer, problem_answer
from edge.proxy.breaker import CircuitBreaker
from edge.proxy.collapse import Collapser
from edge.proxy.forwarding import (
    PERSONALIZATION_PREFIX,
    ClientHop,
    forwardable_headers,
    origin_request_headers,
)
from edge.proxy.freshness import Freshness, classify, current_age, usable_on_error
from edge.proxy.storage import (
    Fetched,
    Generations,
    collapse_key,
    freshened,
    shareable,
    stored_entry,
)
from edge.proxy.store import ResponseStore, StoredResponse
from edge.proxy.upstream import (
    INTERIM_RELAY,
    BadTarget,
    OriginUnavailable,
    Upstream,
    UpstreamResponse,
)
from edge.proxy.urls import normalize_target

__all__ = ["NO_GENERATIONS", "Answer", "HttpCache"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


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


def _forwarded(path_qs: str, headers: Mapping[str, str], hop: ClientHop | None) -> dict[str, str]:
    """What the origin gets of this request (``edge.proxy.forwarding``)."""
    strict = path_qs.startswith(PERSONALIZATION_PREFIX)
    return forwardable_headers(headers, hop, strict=strict)


NO_GENERATIONS: Generations = MappingProxyType({})


def _no_generations() -> Generations:
    return NO_GENERATIONS


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
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        hop: ClientHop | None = None,
    ) -> Answer:
        """Answer one request; ``headers`` have lowercased names, ``hop`` says where it came
        from (``edge.proxy.forwarding``). A HEAD is answered as its GET (the sender leaves
        the body out)."""
        path_qs = normalize_target(target)
        try:
            if method in ("GET", "HEAD"):
                return await self._get(path_qs, headers, hop)
            fwd = _forwarded(path_qs, headers, hop)
            return await self._pass_through(method, path_qs, headers, fwd, body)
        except BadTarget:
            self.counters.error += 1
            return problem_answer(
                400, "bad-target", "Bad request target", "the target cannot be forwarded"
            )

    def fresh_hit(
        self, primary: str, headers: Mapping[str, str]
    ) -> tuple[StoredResponse, float] | None:
        """The stored variant and its age when a request without cache directives of its
        own is a fresh hit; None otherwise. Nothing is counted: the caller that answers it
        counts the hit."""
        stored = self.store.lookup(primary, headers)
        if stored is None:
            return None
        # (An entry stored without tags records no generations: no purge can reach it.)
        recorded = stored.generations
        if recorded:
            current = self.generations()
            # The config's generations are a new mapping after every purge or refresh, so
            # a variant found unpurged against this one needs no second walk.
            if stored.unpurged_for is not current:
                if any(purged(recorded, current)):
                    return None
                stored.unpurged_for = current
        # ``current_age`` and ``classify`` for a request without directives of its own,
        # inlined: this is the hit path, and a Python call costs as much as the arithmetic.
        timing = stored.timing
        age = timing.corrected_initial_age + (self.clock() - timing.response_time)
        if not age < stored.lifetime or "no-cache" in stored.directives.raw:
            return None
        return stored, age

    async def _get(self, path_qs: str, headers: Mapping[str, str], hop: ClientHop | None) -> Answer:
        primary = f"GET {path_qs}"
        stored = self.store.lookup(primary, headers)
        if stored is None:
            return await self._miss(primary, path_qs, headers, _forwarded(path_qs, headers, hop))
        soft, hard = purged(stored.generations, self.generations())
        if hard:
            self.store.invalidate(primary)
            return await self._miss(primary, path_qs, headers, _forwarded(path_qs, headers, hop))
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
            status = f"{CACHE_NAME}; hit; ttl={int(stored.lifetime - age)}"
            answer = self._from_store(stored, age, headers, status)
            if answer.status == stored.status:  # (not a 304 for the client's validator)
                answer.wire, answer.age = stored.wire_headers(), max(0, int(age))
            return answer
        fwd = _forwarded(path_qs, headers, hop)  # (only now: a hit never needs it)
        if state is Freshness.STALE_REVALIDATE:
            self.counters.stale += 1
            self._revalidate_in_background(primary, path_qs, headers, fwd, stored)
            return self._from_store(
                stored,
                age,
                headers,
                f"{CACHE_NAME}; hit; fwd=stale; detail={STALE_WHILE_REVALIDATE}",
            )
        return await self._validate(primary, path_qs, headers, fwd, stored=stored, age=age)

    # -- paths ------------------------------------------------------------------------------
    async def _pass_through(
        self,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        fwd: Mapping[str, str],
        body: bytes,
    ) -> Answer:
        self.counters.passed += 1
        try:
            resp = await self.upstream.fetch(method, path_qs, fwd, body)
        except OriginUnavailable:
            self.counters.error += 1
            return bad_gateway(forward_failed(CACHE_NAME))
        if method not in SAFE_METHODS and 200 <= resp.status < 400:
            self._invalidate_after_unsafe(path_qs, resp)
        return Answer(resp.status, resp.headers, resp.body, f"{CACHE_NAME}; fwd=bypass")

    async def _miss(
        self, primary: str, path_qs: str, headers: Mapping[str, str], fwd: Mapping[str, str]
    ) -> Answer:
        self.counters.miss += 1
        try:
            fetched, own = await self._fetch_collapsed(primary, path_qs, headers, fwd, None)
        except (OriginUnavailable, TimeoutError):
            self.counters.error += 1
            return bad_gateway(f"{CACHE_NAME}; fwd=uri-miss; detail={ORIGIN_UNAVAILABLE}")
        resp = fetched.resp
        status = f"{CACHE_NAME}; fwd=uri-miss; fwd-status={resp.status}"
        if own:
            status += "; stored" if self._maybe_store(primary, fetched.entry) else ""
        else:
            status += "; collapsed"
        return client_answer(resp.status, resp.headers, resp.body, headers, status)

    async def _validate(
        self,
        primary: str,
        path_qs: str,
        headers: Mapping[str, str],
        fwd: Mapping[str, str],
        *,
        stored: StoredResponse,
        age: float,
    ) -> Answer:
        try:
            fetched, own = await self._fetch_collapsed(primary, path_qs, headers, fwd, stored)
        except (OriginUnavailable, TimeoutError):
            fetched, own = None, False
        resp = fetched.resp if fetched is not None else None
        if resp is None or resp.status >= 500:
            if usable_on_error(stored.directives, stored.lifetime, age):
                self.counters.stale += 1
                return self._from_store(
                    stored, age, headers, f"{CACHE_NAME}; hit; fwd=stale; detail={STALE_IF_ERROR}"
                )
            self.counters.error += 1
            if resp is None:
                return bad_gateway(f"{CACHE_NAME}; fwd=stale; detail={ORIGIN_UNAVAILABLE}")
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
        return client_answer(
            resp.status,
            resp.headers,
            resp.body,
            headers,
            f"{CACHE_NAME}; fwd=stale; fwd-status={resp.status}",
        )

    # -- origin -----------------------------------------------------------------------------
    async def _fetch_collapsed(
        self,
        primary: str,
        path_qs: str,
        headers: Mapping[str, str],
        fwd: Mapping[str, str],
        stored: StoredResponse | None,
    ) -> tuple[Fetched, bool]:
        """The origin's answer for this request, and whether this request fetched it (False:
        it shares another's fetch, which is stored already)."""
        to_origin = origin_request_headers(fwd, stored)

        async def fetch() -> Fetched:
            if not self.breaker.allow():
                raise OriginUnavailable("circuit open")
            try:
                resp = await self.upstream.fetch("GET", path_qs, to_origin)
            except OriginUnavailable:
                self.breaker.record_failure()
                raise
            except BaseException:
                self.breaker.abandon()  # no verdict on the origin (bad target, cancelled)
                raise
            self.breaker.record_status(resp.status)
            return Fetched(resp, self._entry(headers, resp))

        fetched, joined = await self.collapser.run_or_join(
            collapse_key(primary, stored), fetch, self.wait_timeout_s
        )
        if not joined or shareable(fetched, headers, stored):
            return fetched, not joined
        if fetched.resp.status >= 500:  # the origin failed: waiters do not retry it
            raise OriginUnavailable(f"origin answered {fetched.resp.status}")
        self.counters.unshared += 1
        return await fetch(), True

    def _revalidate_in_background(
        self,
        primary: str,
        path_qs: str,
        headers: Mapping[str, str],
        fwd: Mapping[str, str],
        stored: StoredResponse,
    ) -> None:
        key = collapse_key(primary, stored)
        if not self.collapser.claim(key):
            return

        async def run() -> None:
            # (its own context: the client it started for has its answer already)
            INTERIM_RELAY.set(None)
            try:
                fetched, own = await self._fetch_collapsed(primary, path_qs, headers, fwd, stored)
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
        return stored_entry(headers, resp, self.generations())

    def _maybe_store(self, primary: str, entry: StoredResponse | None) -> bool:
        if entry is None or not self.store.put(primary, entry):
            return False
        self.counters.stored += 1
        return True

    def _freshen(
        self, primary: str, stored: StoredResponse, resp: UpstreamResponse
    ) -> StoredResponse:
        """RFC 9111 §4.3.4: update the stored response from a 304 and restart its age."""
        fresh = freshened(stored, resp, self.generations())
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
        return client_answer(stored.status, out, stored.body, headers, cache_status)
