"""RFC 9111 / RFC 9213 rules an HTTP-caching conformance suite checks, one test per rule,
each against a real origin server (pytest-httpserver on 127.0.0.1, or a raw socket server
where the response must be exactly as written). The cache's clock is fake.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator
from email.utils import formatdate

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from edge.proxy.cachecontrol import parse_targeted
from edge.proxy.freshness import http_date, parse_age
from edge.proxy.httpcache import HttpCache
from edge.proxy.store import ResponseStore
from edge.proxy.upstream import Upstream
from tests.support.clock import FakeClock
from tests.support.servers import PlainEdgeProcess

pytestmark = pytest.mark.anyio

NOW = 1_764_000_000.0


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def cache(httpserver: HTTPServer, fake_clock: FakeClock) -> AsyncIterator[HttpCache]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        upstream = Upstream(client, httpserver.url_for("").rstrip("/"), clock=fake_clock)
        yield HttpCache(upstream=upstream, store=ResponseStore(), clock=fake_clock)


def respond(httpserver: HTTPServer, path: str, headers: list[tuple[str, str]]) -> None:
    """``headers`` exactly, repeated names as separate field lines."""
    httpserver.expect_request(path).respond_with_response(Response("ok", headers=headers))


def hits(httpserver: HTTPServer, path: str) -> int:
    return sum(1 for req, _ in httpserver.log if req.path == path)


async def twice(cache: HttpCache, path: str, **headers: str) -> tuple[str, str]:
    """Cache-Status of two GETs one second apart."""
    first = await cache.handle("GET", path, headers)
    cache.clock.advance(1)  # type: ignore[attr-defined]
    second = await cache.handle("GET", path, headers)
    return first.cache_status, second.cache_status


DATE = formatdate(NOW, usegmt=True)
INVALID_EXPIRES = {
    "utc": "Thu, 18 Aug 2050 02:01:18 UTC",
    "other-zone": "Thu, 18 Aug 2050 02:01:18 AEST",
    "two-digit-year": "Thu, 18 Aug 50 02:01:18 GMT",
    "no-comma": "Thu 18 Aug 2050 02:01:18 GMT",
    "extra-spaces": "Thu, 18  Aug  2050 02:01:18 GMT",
    "dashes": "Thu, 18-Aug-2050 02:01:18 GMT",
    "periods": "Thu, 18 Aug 2050 02.01.18 GMT",
    "one-digit-hour": "Thu, 18 Aug 2050 2:01:18 GMT",
}


@pytest.mark.parametrize("form", sorted(INVALID_EXPIRES))
async def test_an_invalid_expires_is_stale(cache, httpserver, form) -> None:
    path = f"/expires/{form}"
    respond(httpserver, path, [("Expires", INVALID_EXPIRES[form]), ("Date", DATE)])
    await twice(cache, path)
    assert hits(httpserver, path) == 2


async def test_several_expires_lines_are_stale(cache, httpserver) -> None:
    future = formatdate(NOW + 3600, usegmt=True)
    respond(
        httpserver, "/expires-lines", [("Expires", future), ("Expires", future), ("Date", DATE)]
    )
    await twice(cache, "/expires-lines")
    assert hits(httpserver, "/expires-lines") == 2


@pytest.mark.parametrize(
    "value",
    [
        "Thu, 18 Aug 2050 02:01:18 GMT",
        "THU, 18 AUG 2050 02:01:18 gMT",
        "Thursday, 18-Aug-50 02:01:18 GMT",
        "Thu Aug 18 02:01:18 2050",
    ],
)
async def test_every_valid_expires_form_gives_freshness(cache, httpserver, value) -> None:
    respond(httpserver, "/expires-ok", [("Expires", value), ("Date", DATE)])
    _, second = await twice(cache, "/expires-ok")
    assert second.startswith("p13n-edge; hit") and hits(httpserver, "/expires-ok") == 1


@pytest.mark.parametrize(
    ("lines", "reused"),
    [
        (["7200, 0"], False),  # a list: its first member counts, and it is old
        (["0, 7200"], True),
        (["7200", "0"], False),  # several lines: the first counts
        (["0", "7200"], True),
        (["abc"], True),  # invalid: ignored
        (["-7200"], True),
    ],
)
async def test_age_uses_the_first_member_of_the_first_line(
    cache, httpserver, lines, reused
) -> None:
    respond(
        httpserver,
        "/age",
        [("Date", DATE), ("Cache-Control", "max-age=3600"), *(("Age", v) for v in lines)],
    )
    await twice(cache, "/age")
    assert hits(httpserver, "/age") == (1 if reused else 2)


async def test_vary_star_on_a_later_line_is_never_reused(cache, httpserver) -> None:
    respond(
        httpserver,
        "/vary",
        [("Cache-Control", "max-age=3600"), ("Vary", "Accept-Language"), ("Vary", "*")],
    )
    await twice(cache, "/vary", accept_language="en")
    assert hits(httpserver, "/vary") == 2


async def test_vary_lines_together_select_the_variant(cache, httpserver) -> None:
    respond(
        httpserver,
        "/vary2",
        [("Cache-Control", "max-age=3600"), ("Vary", "Accept-Language"), ("Vary", "X-Shop")],
    )
    await cache.handle("GET", "/vary2", {"accept-language": "en", "x-shop": "a"})
    other = await cache.handle("GET", "/vary2", {"accept-language": "en", "x-shop": "b"})
    assert "fwd=uri-miss" in other.cache_status  # X-Shop (second line) selects too
    assert hits(httpserver, "/vary2") == 2


async def test_connection_listed_response_headers_are_neither_stored_nor_forwarded(
    cache, httpserver
) -> None:
    with RawOrigin(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nConnection: X-Hop-Secret\r\n"
        b"X-Hop-Secret: for-the-proxy-only\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"
    ) as origin:
        cache.upstream.base_url = origin.url
        first = await cache.handle("GET", "/conn", {})
        stored = cache.store.lookup("GET /conn", {})
    names = {k for k, _ in first.headers}
    assert "x-kept" in names and "x-hop-secret" not in names and "connection" not in names
    assert stored is not None and stored.header("x-hop-secret") is None


@pytest.mark.parametrize(
    "cdn", ["max-age=10000, &&&&&", 'max-age="10000"', "max-age =100", "no-store=2"]
)
async def test_an_invalid_cdn_cache_control_is_ignored(cache, httpserver, cdn) -> None:
    respond(httpserver, "/cdn", [("CDN-Cache-Control", cdn), ("Cache-Control", "no-store")])
    await twice(cache, "/cdn")
    assert hits(httpserver, "/cdn") == 2  # Cache-Control (no-store) decided


async def test_a_valid_cdn_cache_control_wins(cache, httpserver) -> None:
    respond(
        httpserver,
        "/cdn-ok",
        [("CDN-Cache-Control", "max-age=3600, foobar"), ("Cache-Control", "no-store")],
    )
    _, second = await twice(cache, "/cdn-ok")
    assert second.startswith("p13n-edge; hit") and hits(httpserver, "/cdn-ok") == 1


EARLY_HINTS = (
    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
    b"Connection: x-hop\r\nX-Hop: not forwarded\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nContent-Length: 2\r\n\r\nok"
)


async def test_an_interim_103_is_never_cached(cache) -> None:
    """The final response is what is answered and stored, none of the 103's fields with it."""
    with RawOrigin(EARLY_HINTS) as origin:
        cache.upstream.base_url = origin.url
        first = await cache.handle("GET", "/early", {})
        second = await cache.handle("GET", "/early", {})
    assert (first.status, first.body) == (200, b"ok")
    assert "link" not in {k for k, _ in first.headers}
    assert second.cache_status.startswith("p13n-edge; hit") and second.status == 200
    assert origin.requests == 1


def test_an_interim_103_reaches_the_client_and_is_not_stored(tmp_path) -> None:
    """Through a served edge (RFC 9110 §15.2): the client gets the origin's 103 with its
    Link (its hop-by-hop fields stay behind), then the 200; the stored entry, answered on
    the next request, has no 103 and no Link."""
    with RawOrigin(EARLY_HINTS) as origin, PlainEdgeProcess(origin.url, log_dir=tmp_path) as edge:
        first = raw_get(edge.port, b"/early")
        second = raw_get(edge.port, b"/early")
    interim, _, final = first.partition(b"\r\n\r\n")
    assert interim.split(b"\r\n") == [b"HTTP/1.1 103 Early Hints", b"link: </a.css>; rel=preload"]
    assert final.startswith(b"HTTP/1.1 200 OK\r\n") and final.endswith(b"\r\n\r\nok")
    assert b"link:" not in final.lower() and b"x-hop" not in first.lower()
    assert second.startswith(b"HTTP/1.1 200 OK\r\n") and b"p13n-edge; hit" in second
    assert b"103" not in second.split(b"\r\n", 1)[0] and b"link:" not in second.lower()


def raw_get(port: int, path: bytes) -> bytes:
    """One GET on a raw socket, read until the edge closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n" % path)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_parsers_directly() -> None:
    assert http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777.0
    assert http_date("Sun Nov  6 08:49:37 1994") == 784111777.0
    assert http_date("Sun, 31 Feb 1994 08:49:37 GMT") is None
    assert parse_age(["7200;foo=bar"]) == 7200 and parse_age([]) is None
    assert parse_targeted(["MaX-aGe=60"]) is None  # keys are lowercase in structured fields
    assert parse_targeted(["max-age=60, private"]) == {"max-age": "60", "private": None}


class RawOrigin:
    """A one-thread origin on 127.0.0.1 answering every request with ``reply`` verbatim."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.requests = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                buf = b""
                while not self._stop.is_set():
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        break
                    if not chunk:
                        break
                    buf += chunk
                    while b"\r\n\r\n" in buf:
                        _, buf = buf.split(b"\r\n\r\n", 1)
                        self.requests += 1
                        conn.sendall(self.reply)

    def __enter__(self) -> RawOrigin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
