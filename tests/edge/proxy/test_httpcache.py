"""RFC 9111 / 5861 / 9213 behaviour of the proxy's shared cache, one test per rule.

The origin here is a real HTTP server (pytest-httpserver on 127.0.0.1) returning exactly the
headers each rule needs; the cache's clock is fake, so "60 seconds later" needs no sleep.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from edge.proxy.breaker import CircuitBreaker
from edge.proxy.httpcache import HttpCache
from edge.proxy.store import ResponseStore
from edge.proxy.upstream import Upstream
from tests.support.clock import FakeClock
from tests.support.timing import async_wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
async def cache(httpserver: HTTPServer, clock: FakeClock) -> AsyncIterator[HttpCache]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        upstream = Upstream(client, httpserver.url_for("").rstrip("/"), clock=clock)
        yield HttpCache(upstream=upstream, store=ResponseStore(), clock=clock)


def serve(
    httpserver: HTTPServer, path: str, headers: dict[str, str], body: str = "ok", status: int = 200
) -> None:
    httpserver.expect_request(path, method="GET").respond_with_data(
        body, status=status, headers=headers
    )


def origin_hits(httpserver: HTTPServer, path: str) -> int:
    return sum(1 for req, _ in httpserver.log if req.path == path)


async def get(cache: HttpCache, path: str, **headers: str):
    return await cache.handle("GET", path, {k.replace("_", "-"): v for k, v in headers.items()})


async def test_fresh_response_is_a_hit_with_age(cache, httpserver, clock) -> None:
    serve(httpserver, "/a", {"Cache-Control": "max-age=60"})
    first = await get(cache, "/a")
    assert "fwd=uri-miss" in first.cache_status and "stored" in first.cache_status
    clock.advance(30)
    second = await get(cache, "/a")
    assert second.cache_status.startswith("p13n-edge; hit")
    assert dict(second.headers)["age"] == "30"
    assert origin_hits(httpserver, "/a") == 1


async def test_s_maxage_wins_over_max_age(cache, httpserver, clock) -> None:
    serve(httpserver, "/s", {"Cache-Control": "max-age=1, s-maxage=100"})
    await get(cache, "/s")
    clock.advance(50)
    assert "hit" in (await get(cache, "/s")).cache_status
    assert origin_hits(httpserver, "/s") == 1


async def test_expires_gives_freshness(cache, httpserver, clock) -> None:
    serve(
        httpserver,
        "/e",
        {
            "Expires": formatdate(clock.now + 60, usegmt=True),
            "Date": formatdate(clock.now, usegmt=True),
        },
    )
    await get(cache, "/e")
    clock.advance(30)
    assert "hit" in (await get(cache, "/e")).cache_status
    clock.advance(40)
    await get(cache, "/e")
    assert origin_hits(httpserver, "/e") == 2


async def test_cdn_cache_control_overrides_cache_control(cache, httpserver, clock) -> None:
    serve(httpserver, "/cdn", {"Cache-Control": "no-store", "CDN-Cache-Control": "max-age=60"})
    await get(cache, "/cdn")
    assert "hit" in (await get(cache, "/cdn")).cache_status
    assert origin_hits(httpserver, "/cdn") == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Cache-Control": "no-store, max-age=60"},
        {"Cache-Control": "private, max-age=60"},
        {"Cache-Control": "public"},  # no freshness information: not stored
        {},
        {"Cache-Control": "max-age=60", "Set-Cookie": "sid=1"},
        {"Cache-Control": "max-age=60", "Vary": "*"},
    ],
)
async def test_not_stored(cache, httpserver, headers) -> None:
    serve(httpserver, "/n", headers)
    await get(cache, "/n")
    await get(cache, "/n")
    assert origin_hits(httpserver, "/n") == 2
    assert len(cache.store) == 0


async def test_authorization_requests_stored_only_when_public(cache, httpserver) -> None:
    serve(httpserver, "/auth", {"Cache-Control": "max-age=60"})
    serve(httpserver, "/auth-public", {"Cache-Control": "public, max-age=60"})
    for path in ("/auth", "/auth", "/auth-public", "/auth-public"):
        await get(cache, path, authorization="Bearer x")
    assert origin_hits(httpserver, "/auth") == 2
    assert origin_hits(httpserver, "/auth-public") == 1


async def test_vary_matches_request_headers(cache, httpserver) -> None:
    def handler(request: Request) -> Response:
        lang = request.headers.get("Accept-Language", "none")
        return Response(lang, headers={"Cache-Control": "max-age=60", "Vary": "Accept-Language"})

    httpserver.expect_request("/v").respond_with_handler(handler)
    assert (await get(cache, "/v", accept_language="en")).body == b"en"
    assert (await get(cache, "/v", accept_language="de")).body == b"de"
    hit = await get(cache, "/v", accept_language="en")
    assert hit.body == b"en" and "hit" in hit.cache_status
    assert origin_hits(httpserver, "/v") == 2


def etag_handler(etag: str, cc: str, cc_304: str) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag, "Cache-Control": cc_304})
        return Response("body", headers={"ETag": etag, "Cache-Control": cc})

    return handler


async def test_etag_revalidation_304_freshens(cache, httpserver, clock) -> None:
    httpserver.expect_request("/etag").respond_with_handler(
        etag_handler('"v1"', "max-age=10", "max-age=100")
    )
    await get(cache, "/etag")
    clock.advance(20)
    revalidated = await get(cache, "/etag")
    assert revalidated.status == 200 and revalidated.body == b"body"
    assert "fwd-status=304" in revalidated.cache_status
    clock.advance(5)
    # RFC 9111 §4.3.4: the 304's fields replace the stored ones, so the entry is fresh again
    # under the new max-age (the age itself follows the origin's Date).
    assert "hit" in (await get(cache, "/etag")).cache_status
    assert origin_hits(httpserver, "/etag") == 2
    assert httpserver.log[1][0].headers.get("If-None-Match") == '"v1"'


async def test_last_modified_revalidation(cache, httpserver, clock) -> None:
    lm = "Wed, 21 Oct 2026 07:28:00 GMT"

    def handler(request: Request) -> Response:
        if request.headers.get("If-Modified-Since") == lm:
            return Response(status=304, headers={"Cache-Control": "max-age=10"})
        return Response("lm", headers={"Last-Modified": lm, "Cache-Control": "max-age=10"})

    httpserver.expect_request("/lm").respond_with_handler(handler)
    await get(cache, "/lm")
    clock.advance(20)
    answer = await get(cache, "/lm")
    assert answer.body == b"lm" and "fwd-status=304" in answer.cache_status


async def test_no_cache_response_is_revalidated_every_time(cache, httpserver) -> None:
    httpserver.expect_request("/nc").respond_with_handler(
        etag_handler('"n"', "no-cache, max-age=60", "no-cache, max-age=60")
    )
    await get(cache, "/nc")
    second = await get(cache, "/nc")
    assert "fwd-status=304" in second.cache_status
    assert origin_hits(httpserver, "/nc") == 2


async def test_stale_while_revalidate_serves_stale_then_refreshes(cache, httpserver, clock) -> None:
    versions = iter(["v1", "v2", "v3"])

    def handler(request: Request) -> Response:
        return Response(
            next(versions), headers={"Cache-Control": "max-age=10, stale-while-revalidate=60"}
        )

    httpserver.expect_request("/swr").respond_with_handler(handler)
    assert (await get(cache, "/swr")).body == b"v1"
    clock.advance(20)
    stale = await get(cache, "/swr")
    assert stale.body == b"v1" and "stale-while-revalidate" in stale.cache_status
    await asyncio.gather(*cache._background)
    fresh = await get(cache, "/swr")
    assert fresh.body == b"v2" and "hit" in fresh.cache_status


async def test_stale_if_error_then_502_past_the_window(cache, httpserver, clock) -> None:
    serve(httpserver, "/sie", {"Cache-Control": "max-age=10, stale-if-error=100"})
    await get(cache, "/sie")
    httpserver.clear()
    httpserver.expect_request("/sie").respond_with_data("boom", status=503)
    clock.advance(50)
    stale = await get(cache, "/sie")
    assert stale.status == 200 and "stale-if-error" in stale.cache_status
    clock.advance(100)
    assert (await get(cache, "/sie")).status == 503


async def test_must_revalidate_forbids_stale_on_error(cache, httpserver, clock) -> None:
    serve(httpserver, "/mr", {"Cache-Control": "max-age=10, must-revalidate, stale-if-error=100"})
    await get(cache, "/mr")
    httpserver.clear()
    httpserver.expect_request("/mr").respond_with_data("boom", status=500)
    clock.advance(20)
    assert (await get(cache, "/mr")).status == 500


async def test_origin_down_without_stale_is_502_problem(clock) -> None:
    async with httpx.AsyncClient(timeout=0.5) as client:
        cache = HttpCache(
            upstream=Upstream(client, "http://127.0.0.1:9", clock=clock),
            store=ResponseStore(),
            clock=clock,
        )
        answer = await get(cache, "/x")
    assert answer.status == 502
    assert dict(answer.headers)["content-type"] == "application/problem+json"


async def test_unsafe_method_invalidates_target_and_location(cache, httpserver) -> None:
    serve(httpserver, "/cart", {"Cache-Control": "max-age=60"})
    serve(httpserver, "/other", {"Cache-Control": "max-age=60"})
    httpserver.expect_request("/cart", method="POST").respond_with_data(
        "", status=201, headers={"Location": "/other"}
    )
    await get(cache, "/cart")
    await get(cache, "/other")
    assert len(cache.store) == 2
    answer = await cache.handle("POST", "/cart", {"content-type": "application/json"}, b"{}")
    assert answer.status == 201 and len(cache.store) == 0


async def test_forwarding_headers_are_not_forwarded_nor_keyed(cache, httpserver) -> None:
    def handler(request: Request) -> Response:
        host = request.headers.get("X-Forwarded-Host", "clean")
        return Response(f"host={host}", headers={"Cache-Control": "max-age=60"})

    httpserver.expect_request("/page").respond_with_handler(handler)
    poisoned = await get(cache, "/page", x_forwarded_host="evil.example")
    assert poisoned.body == b"host=clean"
    assert (await get(cache, "/page")).body == b"host=clean"
    assert "x-forwarded-host" not in {k.lower() for k, _ in httpserver.log[0][0].headers.items()}


async def test_age_from_origin_counts(cache, httpserver, clock) -> None:
    serve(httpserver, "/aged", {"Cache-Control": "max-age=60", "Age": "50"})
    await get(cache, "/aged")
    clock.advance(15)
    await get(cache, "/aged")
    assert origin_hits(httpserver, "/aged") == 2


async def test_client_conditional_gets_304(cache, httpserver) -> None:
    serve(httpserver, "/c", {"Cache-Control": "max-age=60", "ETag": '"abc"'})
    await get(cache, "/c")
    answer = await get(cache, "/c", if_none_match='"abc"')
    assert answer.status == 304 and answer.body == b""


async def test_normalized_targets_share_an_entry(cache, httpserver) -> None:
    serve(httpserver, "/p/~x", {"Cache-Control": "max-age=60"})
    await get(cache, "/p/%7ex")
    await get(cache, "/p/./a/../~x")
    assert origin_hits(httpserver, "/p/~x") == 1


async def test_a_burst_on_a_stale_entry_starts_one_background_revalidation(
    cache, httpserver, clock
) -> None:
    serve(httpserver, "/burst", {"Cache-Control": "max-age=10, stale-while-revalidate=60"})
    await get(cache, "/burst")
    clock.advance(20)
    answers = await asyncio.gather(*(get(cache, "/burst") for _ in range(20)))
    assert all("stale-while-revalidate" in a.cache_status for a in answers)
    # Every request saw the entry stale before any refresh task ran: still one refresh.
    assert len(cache._background) == 1 and cache.collapser.background == 1
    await asyncio.gather(*cache._background)
    assert origin_hits(httpserver, "/burst") == 2
    assert "hit" in (await get(cache, "/burst")).cache_status


async def _overlapping(cache: HttpCache, gate: threading.Event, requests: list) -> list:
    """Run ``requests`` at once while the origin holds the first at ``gate``; open it once
    the other requests all wait on that fetch (an event, not a guess at a delay)."""
    running = asyncio.gather(*requests)
    try:
        waiting = len(requests) - 1
        await async_wait_until(lambda: cache.collapser.collapsed >= waiting, 10, "no overlap")
    finally:
        gate.set()
    return await running


async def test_fifty_concurrent_cold_requests_make_one_origin_request(cache, httpserver) -> None:
    gate = threading.Event()

    def handler(request: Request) -> Response:
        gate.wait(30)  # slow origin: held until all 50 wait on this fetch
        return Response("slow", headers={"Cache-Control": "max-age=60"})

    httpserver.expect_request("/cold").respond_with_handler(handler)
    answers = await _overlapping(cache, gate, [get(cache, "/cold") for _ in range(50)])
    assert all(a.body == b"slow" for a in answers)
    assert origin_hits(httpserver, "/cold") == 1
    assert cache.collapser.collapsed == 49


def _echo(header: str, cache_control: str, vary: str | None = None, delay_s: float = 0.3):
    """An origin handler answering with the request's own ``header`` value, slowly, so that
    concurrent requests overlap the first one's fetch."""

    def handler(request: Request) -> Response:
        time.sleep(delay_s)
        headers = {"Cache-Control": cache_control}
        if vary:
            headers["Vary"] = vary
        return Response(f"for {request.headers.get(header, 'nobody')}", headers=headers)

    return handler


@pytest.mark.parametrize(
    ("header", "values", "cache_control"),
    [
        ("Authorization", ["Bearer alice", "Bearer bob", None], "private, no-store"),
        ("Authorization", ["Bearer alice", "Bearer bob"], "max-age=60"),  # RFC 9111 §3.5
        ("Cookie", ["session=alice", "session=bob"], "no-store"),
        ("Cookie", ["session=alice", "session=bob"], "private, max-age=60"),
    ],
)
async def test_collapsed_waiters_never_get_another_requests_private_answer(
    cache, httpserver, header, values, cache_control
) -> None:
    httpserver.expect_request("/acct").respond_with_handler(_echo(header, cache_control))
    answers = await asyncio.gather(
        *(cache.handle("GET", "/acct", {header.lower(): v} if v else {}) for v in values)
    )
    assert [a.body.decode() for a in answers] == [f"for {v or 'nobody'}" for v in values]
    assert origin_hits(httpserver, "/acct") == len(values)
    assert cache.counters.unshared == len(values) - 1


async def test_collapsed_waiters_get_only_their_own_vary_variant(cache, httpserver) -> None:
    handler = _echo("Accept-Language", "max-age=60", vary="Accept-Language")
    httpserver.expect_request("/v").respond_with_handler(handler)
    langs = ["fr", "de", "fr"]
    answers = await asyncio.gather(*(get(cache, "/v", accept_language=lang) for lang in langs))
    assert [a.body.decode() for a in answers] == ["for fr", "for de", "for fr"]
    assert "collapsed" in answers[2].cache_status  # the second fr shared the first's fetch
    assert origin_hits(httpserver, "/v") == 2
    for lang in ("de", "fr"):  # and each stored variant is its own language's
        again = await get(cache, "/v", accept_language=lang)
        assert again.body.decode() == f"for {lang}" and "hit" in again.cache_status


async def test_a_waiter_does_not_retry_an_origin_error(cache, httpserver) -> None:
    gate = threading.Event()

    def failing(request: Request) -> Response:
        gate.wait(30)
        return Response("boom", status=503)

    httpserver.expect_request("/err").respond_with_handler(failing)
    answers = await _overlapping(cache, gate, [get(cache, "/err") for _ in range(10)])
    assert answers[0].status == 503 and {a.status for a in answers[1:]} == {502}
    assert origin_hits(httpserver, "/err") == 1


def _breaker_cache(
    httpserver: HTTPServer, clock: FakeClock, client: httpx.AsyncClient
) -> HttpCache:
    upstream = Upstream(client, httpserver.url_for("").rstrip("/"), clock=clock)
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=5, clock=clock)
    return HttpCache(upstream=upstream, store=ResponseStore(), clock=clock, breaker=breaker)


async def test_a_bad_target_is_a_400_and_does_not_hold_the_breakers_trial(
    httpserver, clock
) -> None:
    serve(httpserver, "/down", {}, status=503)
    serve(httpserver, "/fine", {"Cache-Control": "no-store"})
    async with httpx.AsyncClient(timeout=2.0) as client:
        cache = _breaker_cache(httpserver, clock, client)
        for _ in range(2):
            await get(cache, "/down")
        assert cache.breaker.state == "open"
        clock.advance(6)  # half-open: one trial may go
        bad = await get(cache, "/a\x01b")
        assert bad.status == 400 and b"bad-target" in bad.body
        assert (await get(cache, "/fine")).status == 200  # the trial was given back
        assert cache.breaker.state == "closed"


async def test_one_broken_url_does_not_open_the_breaker_for_everyone(httpserver, clock) -> None:
    serve(httpserver, "/broken", {}, status=500)
    serve(httpserver, "/fine", {"Cache-Control": "no-store"})
    async with httpx.AsyncClient(timeout=2.0) as client:
        cache = _breaker_cache(httpserver, clock, client)
        for _ in range(5):
            assert (await get(cache, "/broken")).status == 500
        assert cache.breaker.state == "closed"
        assert (await get(cache, "/fine")).status == 200


@pytest.fixture
async def purgeable(
    httpserver: HTTPServer, clock: FakeClock
) -> AsyncIterator[tuple[HttpCache, dict]]:
    generations: dict[str, tuple[int, int]] = {}
    async with httpx.AsyncClient(timeout=2.0) as client:
        upstream = Upstream(client, httpserver.url_for("").rstrip("/"), clock=clock)
        yield (
            HttpCache(
                upstream=upstream,
                store=ResponseStore(),
                clock=clock,
                generations=lambda: generations,
            ),
            generations,
        )


async def test_a_hard_purge_pulled_with_the_config_makes_a_proxied_entry_a_miss(
    purgeable, httpserver
) -> None:
    cache, generations = purgeable
    headers = {"Cache-Control": "max-age=600", "Cache-Tag": "seg:abc,route:home"}
    serve(httpserver, "/list", headers)
    await get(cache, "/list")
    assert "hit" in (await get(cache, "/list")).cache_status
    generations["seg:abc"] = (0, 1)  # a hard purge this edge only learns from its config
    after = await get(cache, "/list")
    assert "uri-miss" in after.cache_status and origin_hits(httpserver, "/list") == 2
    assert "hit" in (await get(cache, "/list")).cache_status  # stored with the new generation


async def test_a_soft_purge_of_everything_makes_untagged_entries_stale(
    purgeable, httpserver
) -> None:
    cache, generations = purgeable
    serve(httpserver, "/page", {"Cache-Control": "max-age=600, stale-while-revalidate=60"})
    await get(cache, "/page")
    generations["*"] = (1, 0)
    stale = await get(cache, "/page")
    assert "stale-while-revalidate" in stale.cache_status
    await asyncio.gather(*cache._background)
    assert "hit" in (await get(cache, "/page")).cache_status


async def test_head_is_answered_from_the_stored_get(cache, httpserver) -> None:
    serve(httpserver, "/h", {"Cache-Control": "max-age=60"}, body="twelve bytes")
    cold = await cache.handle("HEAD", "/h", {})
    assert cold.status == 200 and cold.body == b"twelve bytes"  # the sender drops the body
    warm = await cache.handle("HEAD", "/h", {})
    assert "hit" in warm.cache_status
    assert [r.method for r, _ in httpserver.log] == ["GET"]  # filled with a GET, once
