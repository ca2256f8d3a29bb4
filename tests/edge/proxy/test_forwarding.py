"""The edge as an ordinary reverse proxy: every end-to-end request header reaches the origin,
hop-by-hop and client-forged forwarding headers do not, and any status 100-999 comes back.

The origin is a real HTTP server (pytest-httpserver on 127.0.0.1); the wire tests run a real
``p13n edge`` process (uvicorn) in front of it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from edge.proxy.forwarding import ClientHop, forwardable_headers
from edge.proxy.httpcache import HttpCache
from edge.proxy.store import ResponseStore
from edge.proxy.upstream import Upstream
from tests.support.clock import FakeClock
from tests.support.servers import PlainEdgeProcess


def echo(request: Request) -> Response:
    """The request headers the origin saw, as JSON (names lowercased)."""
    seen = {k.lower(): v for k, v in request.headers.items()}
    return Response(json.dumps(seen), content_type="application/json")


def test_end_to_end_headers_pass_and_hop_by_hop_do_not() -> None:
    sent = {
        "x-api-key": "k-123",
        "range": "bytes=0-9",
        "connection": "keep-alive, X-Secret-Hop",
        "x-secret-hop": "only for the next hop",
        "keep-alive": "timeout=5",
        "te": "trailers",
        "upgrade": "h2c",
        "host": "shop.example",
        "x-forwarded-for": "6.6.6.6",
        "forwarded": "for=6.6.6.6;proto=https",
        "x-forwarded-host": "evil.example",
        "x-real-ip": "6.6.6.6",
        "via": "1.1 corp-proxy",
    }
    out = forwardable_headers(sent, ClientHop("10.0.0.7", "http", "shop.example"))
    assert out["x-api-key"] == "k-123" and out["range"] == "bytes=0-9"
    for dropped in ("connection", "x-secret-hop", "keep-alive", "te", "upgrade", "host"):
        assert dropped not in out
    assert "forwarded" not in out and "x-real-ip" not in out
    assert out["x-forwarded-for"] == "10.0.0.7"  # the connection's, never the client's claim
    assert out["x-forwarded-host"] == "shop.example"
    assert out["x-forwarded-proto"] == "http"
    assert out["via"] == "1.1 corp-proxy, 1.1 p13n-edge"


def test_personalization_routes_keep_the_allow_list() -> None:
    out = forwardable_headers({"x-api-key": "k", "accept": "a/b"}, strict=True)
    assert "x-api-key" not in out and out["accept"] == "a/b"


@pytest.fixture
async def cache(httpserver: HTTPServer) -> AsyncIterator[HttpCache]:
    clock = FakeClock(1_764_000_000.0)
    async with httpx.AsyncClient(timeout=2.0) as client:
        upstream = Upstream(client, httpserver.url_for("").rstrip("/"), clock=clock)
        yield HttpCache(upstream=upstream, store=ResponseStore(), clock=clock)


@pytest.mark.anyio
async def test_the_cache_forwards_custom_headers_on_misses_and_passes(
    cache: HttpCache, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/echo").respond_with_handler(echo)
    hop = ClientHop("10.1.2.3", "https", "shop.example")
    got = await cache.handle(
        "GET", "/echo", {"x-tenant": "t9", "x-forwarded-for": "6.6.6.6"}, hop=hop
    )
    seen = json.loads(got.body)
    assert seen["x-tenant"] == "t9"
    assert seen["x-forwarded-for"] == "10.1.2.3" and seen["x-forwarded-proto"] == "https"
    posted = await cache.handle("POST", "/echo", {"x-tenant": "t8"}, b"{}", hop)
    assert json.loads(posted.body)["x-tenant"] == "t8"
    rail = await cache.handle("GET", "/p13n/v1/other", {"x-tenant": "t7"}, hop=hop)
    assert rail.status == 500  # pytest-httpserver: no handler; what matters is below
    last = httpserver.log[-1][0]
    assert last.path == "/p13n/v1/other" and "X-Tenant" not in last.headers


@pytest.fixture
def plain_edge(httpserver: HTTPServer, tmp_path: Path) -> Iterator[PlainEdgeProcess]:
    """``p13n edge`` (a real uvicorn process) in front of pytest-httpserver."""
    httpserver.expect_request("/v1/edge/config").respond_with_data("", status=404)
    with PlainEdgeProcess(httpserver.url_for("").rstrip("/"), log_dir=tmp_path) as edge:
        yield edge


def needs_key(request: Request) -> Response:
    """An ordinary origin's API: 401 without its own custom header."""
    if request.headers.get("X-Api-Key") != "s3cret":
        return Response('{"title": "no key"}', status=401, content_type="application/json")
    return Response('{"ok": true}', content_type="application/json")


def test_an_origin_that_needs_a_custom_header_works_through_the_edge(
    plain_edge: PlainEdgeProcess, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/orders").respond_with_handler(needs_key)
    with httpx.Client(base_url=plain_edge.url, timeout=5) as client:
        ok = client.get("/api/orders", headers={"x-api-key": "s3cret"})
        refused = client.get("/api/orders")
    assert ok.status_code == 200 and ok.json() == {"ok": True}
    assert refused.status_code == 401


@pytest.mark.parametrize("status", [299, 599, 600, 799, 999])
def test_any_three_digit_status_passes_through_the_served_edge(
    plain_edge: PlainEdgeProcess, httpserver: HTTPServer, status: int
) -> None:
    httpserver.expect_request(f"/odd/{status}").respond_with_data(
        "odd", status=status, headers={"Cache-Control": "max-age=60"}
    )
    with httpx.Client(base_url=plain_edge.url, timeout=5) as client:
        first = client.get(f"/odd/{status}")
        second = client.get(f"/odd/{status}")
    assert (first.status_code, first.text) == (status, "odd")
    assert (second.status_code, second.text) == (status, "odd")
    # An unknown status is not one a shared cache stores: both reached the origin.
    assert sum(1 for req, _ in httpserver.log if req.path == f"/odd/{status}") == 2
    assert "Traceback" not in plain_edge.output() and "KeyError" not in plain_edge.output()
