"""Fresh hits answered in the protocol layer (``edge.proxy.hitpath``): the same answer the
app gives, and no answer at all (the app's turn) whenever the request or the stored response
is anything but a plain fresh hit. In-process against pytest-httpserver on a fake clock, and
through a served ``p13n edge`` on a raw socket for pipelined requests."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator

import httptools
import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from edge.proxy.hitpath import HitPath
from edge.proxy.httpcache import HttpCache
from edge.proxy.metrics import Traffic
from edge.proxy.planes import Planes
from edge.proxy.store import ResponseStore
from edge.proxy.upstream import Upstream
from tests.support.clock import FakeClock
from tests.support.servers import PlainEdgeProcess

pytestmark = pytest.mark.anyio

NOW = 1_764_000_000.0
HOST = [(b"host", b"shop.test")]


@pytest.fixture
async def cache(httpserver: HTTPServer) -> AsyncIterator[HttpCache]:
    clock = FakeClock(NOW)
    async with httpx.AsyncClient(timeout=2.0) as client:
        upstream = Upstream(client, httpserver.url_for("").rstrip("/"), clock=clock)
        yield HttpCache(upstream=upstream, store=ResponseStore(), clock=clock)


def serve(httpserver: HTTPServer, path: str, headers: dict[str, str], body: str = "ok") -> None:
    httpserver.expect_request(path).respond_with_response(Response(body, headers=headers))


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), fields, body


async def test_a_fresh_hit_is_the_apps_answer(cache, httpserver) -> None:
    serve(httpserver, "/a", {"Cache-Control": "max-age=60", "ETag": '"v1"'}, "hello")
    await cache.handle("GET", "/a", {})
    cache.clock.advance(5)
    traffic = Traffic()
    hits = HitPath(cache, Planes(), traffic)
    raw = hits.answer(b"GET", b"/a", HOST)
    assert raw is not None
    status, fields, body = parse(raw)
    app = await cache.handle("GET", "/a", {})
    assert app.wire is not None
    expected = {k.decode(): v.decode() for k, v in app.wire}
    expected |= {"age": str(app.age), "cache-status": app.cache_status}
    expected["content-length"] = str(len(app.body))
    assert (status, fields, body) == (app.status, expected, app.body)
    assert fields["age"] == "5" and fields["cache-status"] == "p13n-edge; hit; ttl=55"
    assert cache.counters.hit == 2 and (traffic.requests, traffic.bytes_sent) == (1, 5)
    head = hits.answer(b"HEAD", b"/a", HOST)
    assert head is not None and head == raw[: -len(b"hello")]
    assert traffic.bytes_sent == 5  # (a HEAD sends no body)


async def test_a_response_without_date_gets_the_edges(cache, httpserver) -> None:
    httpserver.expect_request("/nodate").respond_with_handler(
        lambda req: _without_date(Response("x", headers={"Cache-Control": "max-age=60"}))
    )
    await cache.handle("GET", "/nodate", {})
    raw = HitPath(cache, Planes(), Traffic()).answer(b"GET", b"/nodate", HOST)
    assert raw is not None and parse(raw)[1]["date"].endswith(" GMT")


def _without_date(response: Response) -> Response:
    response.headers.pop("Date", None)
    return response


@pytest.mark.parametrize(
    ("method", "fields"),
    [
        (b"POST", []),
        (b"GET", [(b"if-none-match", b'"v1"')]),
        (b"GET", [(b"cache-control", b"no-cache")]),
        (b"GET", [(b"range", b"bytes=0-1")]),
        (b"GET", [(b"content-length", b"2")]),
        (b"GET", [(b"authorization", b"Bearer x")]),
    ],
)
async def test_requests_that_are_not_plain_hits_go_to_the_app(
    cache, httpserver, method, fields
) -> None:
    serve(httpserver, "/a", {"Cache-Control": "max-age=60", "ETag": '"v1"'})
    await cache.handle("GET", "/a", {})
    assert HitPath(cache, Planes(), Traffic()).answer(method, b"/a", [*HOST, *fields]) is None
    assert cache.counters.hit == 0


async def test_stored_responses_that_are_not_plain_hits_go_to_the_app(cache, httpserver) -> None:
    serve(httpserver, "/stale", {"Cache-Control": "max-age=10"})
    serve(httpserver, "/moved", {"Cache-Control": "max-age=60", "Location": "/elsewhere"})
    serve(httpserver, "/tagged", {"Cache-Control": "max-age=60", "Cache-Tag": "shoes"})
    serve(httpserver, "/lang", {"Cache-Control": "max-age=60", "Vary": "Accept-Language"})
    serve(httpserver, "/v1/admin/x", {"Cache-Control": "max-age=60"})
    for path in ("/stale", "/moved", "/tagged", "/lang"):
        await cache.handle("GET", path, {"accept-language": "de"})
    hits = HitPath(cache, Planes(), Traffic())
    generations = {"shoes": (1, 0)}
    cache.generations = lambda: generations  # a soft purge of the tag
    cache.clock.advance(11)
    assert hits.answer(b"GET", b"/stale", HOST) is None  # stale
    assert hits.answer(b"GET", b"/moved", HOST) is None  # Location rewritten by the app
    assert hits.answer(b"GET", b"/tagged", HOST) is None  # purged
    assert hits.answer(b"GET", b"/lang", [(b"accept-language", b"fr")]) is None
    assert hits.answer(b"GET", b"/lang", [(b"accept-language", b"de")]) is not None
    assert hits.answer(b"GET", b"/v1/admin/x", HOST) is None  # the admin plane: a 404
    assert hits.answer(b"GET", b"/p13n/v1/rail/home", HOST) is None  # a rail
    assert cache.counters.hit == 1


async def test_a_purge_after_hits_reaches_the_hit_path(cache, httpserver) -> None:
    serve(httpserver, "/tagged", {"Cache-Control": "max-age=60", "Cache-Tag": "shoes"})
    await cache.handle("GET", "/tagged", {})
    hits = HitPath(cache, Planes(), Traffic())
    assert hits.answer(b"GET", b"/tagged", HOST) is not None  # found unpurged, remembered
    assert hits.answer(b"GET", b"/tagged", HOST) is not None
    generations = {"shoes": (0, 1)}
    cache.generations = lambda: generations  # a hard purge: a new mapping, as the config's
    assert hits.answer(b"GET", b"/tagged", HOST) is None
    assert cache.counters.hit == 2


async def test_hits_a_second_apart_say_their_own_age(cache, httpserver) -> None:
    serve(httpserver, "/a", {"Cache-Control": "max-age=60"}, "hello")
    await cache.handle("GET", "/a", {})
    hits = HitPath(cache, Planes(), Traffic())
    seen = []
    for step in (0.25, 0.5, 0.5, 1.0, 0.75, 0.5):  # ages 0.25, 0.75, 1.25, 2.25, 3, 3.5
        cache.clock.advance(step)
        raw = hits.answer(b"GET", b"/a", HOST)
        assert raw is not None
        fields = parse(raw)[1]
        seen.append((fields["age"], fields["cache-status"]))
    ttl = "p13n-edge; hit; ttl="
    assert seen == [
        ("0", ttl + "59"),
        ("0", ttl + "59"),
        ("1", ttl + "58"),
        ("2", ttl + "57"),
        ("3", ttl + "57"),  # (a whole age: the TTL, truncated, is still 57)
        ("3", ttl + "56"),
    ]


@pytest.mark.parametrize(
    ("version", "kept_alive"),
    [(b"1.1", True), (b"1.0", False), (b"2.0", False), (b"0.9", False)],
)
def test_only_http_1_1_is_kept_alive_without_a_connection_field(
    version: bytes, kept_alive: bool
) -> None:
    # The protocol asks the parser for the version only when a Connection field is present:
    # this is what makes that sound (and it fails if a new llhttp changes it).
    seen: list[bool] = []

    class Callbacks:
        def on_headers_complete(self) -> None:
            seen.append(parser.should_keep_alive())

    parser = httptools.HttpRequestParser(Callbacks())
    parser.feed_data(b"GET / HTTP/" + version + b"\r\nHost: shop.test\r\n\r\n")
    assert seen == [kept_alive]
    for other in (b"1.2", b"3.0"):  # refused outright
        with pytest.raises(httptools.HttpParserError):
            httptools.HttpRequestParser(Callbacks()).feed_data(b"GET / HTTP/" + other + b"\r\n")


@pytest.fixture(scope="module")
def served(
    make_httpserver: HTTPServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlainEdgeProcess]:
    origin = make_httpserver.url_for("").rstrip("/")
    with PlainEdgeProcess(origin, log_dir=tmp_path_factory.mktemp("edge")) as edge:
        yield edge


def test_pipelined_hits_and_app_answers_keep_their_order(served, httpserver) -> None:
    serve(httpserver, "/one", {"Cache-Control": "max-age=60", "ETag": '"1"'}, "first")
    serve(httpserver, "/two", {"Cache-Control": "max-age=60"}, "second")
    assert httpx.get(served.url + "/one").status_code == 200  # stored
    requests = [
        b"GET /one HTTP/1.1\r\nHost: shop.test\r\n\r\n",  # a protocol-level hit
        b"GET /two HTTP/1.1\r\nHost: shop.test\r\n\r\n",  # a miss: the app
        b'GET /one HTTP/1.1\r\nHost: shop.test\r\nIf-None-Match: "1"\r\n\r\n',  # the app's 304
        b"HEAD /one HTTP/1.1\r\nHost: shop.test\r\n\r\n",
        b"GET /one HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",  # the app closes
    ]
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"".join(requests))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    reply = b"".join(chunks)
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)]
    assert statuses == [200, 200, 304, 200, 200]
    assert reply.count(b"first") == 2 and reply.count(b"second") == 1
    assert reply.count(b"cache-status: p13n-edge; hit") == 4
