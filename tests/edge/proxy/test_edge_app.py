"""The edge app around the cache and the core: what reaches the origin, HEAD, and rails
answered before the origin was ever reached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from pytest_httpserver import HTTPServer, URIPattern
from werkzeug import Request, Response

from cache_keys import new_shopper_id
from edge.proxy.app import EdgeRuntime, create_app
from edge.proxy.settings import ProxySettings
from tests.support.asgi import app_client
from tests.support.clock import FakeClock
from tests.support.data import shop_list, shopper_cookie
from tests.support.proxy import proxy_settings
from tests.support.servers import OriginProcess

pytestmark = pytest.mark.anyio


@pytest.fixture
async def plain_edge(httpserver: HTTPServer) -> AsyncIterator[httpx.AsyncClient]:
    """The edge in plain-cache mode (no signing keys) in front of pytest-httpserver."""
    httpserver.expect_request("/v1/edge/config").respond_with_data("", status=404)
    origin_url = httpserver.url_for("").rstrip("/")
    settings = ProxySettings(core=None, origin_url=origin_url, heartbeat_s=0)
    app = create_app(settings, EdgeRuntime.open(settings))
    async with app_client(app, base_url="http://shop.test") as client:
        yield client


def _raw_uri(request: Request) -> str:
    return str(request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI"))


@pytest.mark.parametrize("path", ["/a%3Fb=1", "/a%23frag", "/a%2Fb", "/%FF", "/%01"])
async def test_the_origin_gets_the_path_as_the_client_sent_it(plain_edge, httpserver, path) -> None:
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(_raw_uri(request))
        return Response("ok", headers={"Cache-Control": "max-age=60"})

    httpserver.expect_request(_PathAny()).respond_with_handler(handler)
    r = await plain_edge.get(path)
    assert r.status_code == 200
    assert seen == [path]


async def test_an_encoded_hash_is_not_the_same_resource(plain_edge, httpserver) -> None:
    def handler(request: Request) -> Response:
        return Response(_raw_uri(request), headers={"Cache-Control": "max-age=60"})

    httpserver.expect_request(_PathAny()).respond_with_handler(handler)
    assert (await plain_edge.get("/a")).text == "/a"
    assert (await plain_edge.get("/a%23frag")).text == "/a%23frag"


async def test_head_on_proxied_content_has_the_gets_length_and_no_body(
    plain_edge, httpserver
) -> None:
    httpserver.expect_request("/page").respond_with_data(
        "twelve bytes", headers={"Cache-Control": "max-age=60"}
    )
    head = await plain_edge.head("/page")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "12"
    assert (await plain_edge.get("/page")).text == "twelve bytes"


async def test_head_on_a_rail_goes_through_the_core(
    origin: OriginProcess, clock: FakeClock
) -> None:
    settings = proxy_settings(origin)
    app = create_app(settings, EdgeRuntime.open(settings, clock=clock))
    async with app_client(app, base_url="http://shop.test") as edge:
        cookie = shopper_cookie(new_shopper_id(), 0, clock.now)
        get = await edge.get("/p13n/v1/rail/home?k=5", headers={"cookie": cookie})
        head = await edge.head("/p13n/v1/rail/home?k=5", headers={"cookie": cookie})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert "detail=hit" in head.headers["cache-status"]


async def test_rails_answer_the_default_list_when_the_origin_was_never_reached(
    origin: OriginProcess, clock: FakeClock
) -> None:
    origin.kill()  # down before the edge starts: no config ever loaded
    settings = proxy_settings(origin)
    assert settings.core is not None
    built_in = shop_list(7, 8)  # DEFAULT_ITEMS, the operator's built-in default rail
    settings = replace(settings, core=replace(settings.core, default_items=built_in))
    app = create_app(settings, EdgeRuntime.open(settings, clock=clock))
    async with app_client(app, base_url="http://shop.test") as edge:
        cookie = shopper_cookie(new_shopper_id(), 0, clock.now)
        r = await edge.get("/p13n/v1/rail/home?k=5", headers={"cookie": cookie})
    assert r.status_code == 200
    assert r.headers["cache-status"].endswith("detail=default")
    assert r.json()["degraded"] is True
    assert [i["item"] for i in r.json()["items"]] == [i.item for i in built_in[:5]]


class _PathAny(URIPattern):
    """Matches every request path."""

    def match(self, uri: str) -> bool:
        return True


async def test_a_rail_the_config_does_not_name_goes_to_the_origin(
    origin: OriginProcess, clock: FakeClock
) -> None:
    settings = proxy_settings(origin)
    runtime = EdgeRuntime.open(settings, clock=clock)
    async with app_client(create_app(settings, runtime), base_url="http://shop.test") as edge:
        cookie = shopper_cookie(new_shopper_id(), 0, clock.now)
        keys_before = len(runtime.store)
        for name in ("nosuch", "made-up-1", "made-up-2"):
            r = await edge.get(f"/p13n/v1/rail/{name}", headers={"cookie": cookie})
            assert r.status_code == 404  # the origin's answer: it has no such path
        assert len(runtime.store) == keys_before
        assert origin.requests_to("/v1/segments/{hseg}/list") == 0


async def test_any_path_is_proxied_and_unknown_methods_are_refused(plain_edge, httpserver) -> None:
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(_raw_uri(request))
        return Response("ok", headers={"Cache-Control": "no-store"})

    httpserver.expect_request(_PathAny()).respond_with_handler(handler)
    assert (await plain_edge.get("/a%0d%0ab")).status_code == 200  # no router to miss it
    assert seen == ["/a%0D%0Ab"]  # normalized case, still encoded
    trace = await plain_edge.request("TRACE", "/a")
    assert trace.status_code == 405
    assert trace.headers["content-type"] == "application/problem+json"
    assert len(seen) == 1


async def test_the_bench_hello_route_is_a_plain_starlette_route(httpserver) -> None:
    httpserver.expect_request("/v1/edge/config").respond_with_data("", status=404)
    origin_url = httpserver.url_for("").rstrip("/")
    settings = ProxySettings(core=None, origin_url=origin_url, heartbeat_s=0, bench_hello=True)
    async with app_client(create_app(settings), base_url="http://shop.test") as edge:
        assert (await edge.get("/__bench/hello")).text == "hello, world"
        assert (await edge.post("/__bench/hello")).status_code == 405  # Starlette's own


async def test_a_fresh_hit_sends_the_stored_headers_as_the_miss_did(plain_edge, httpserver) -> None:
    httpserver.expect_request("/hit").respond_with_data(
        "payload", headers={"Cache-Control": "max-age=600", "ETag": '"v1"', "X-Shop": "a"}
    )
    miss = await plain_edge.get("/hit")
    hit = await plain_edge.get("/hit")
    assert hit.headers["cache-status"].startswith("p13n-edge; hit")
    per_answer = ("cache-status", "age")
    strip = lambda r: sorted((k, v) for k, v in r.headers.multi_items() if k not in per_answer)  # noqa: E731
    assert strip(hit) == strip(miss) and hit.text == "payload"
    assert len(hit.headers.get_list("date")) == 1 and hit.headers["content-length"] == "7"
    head = await plain_edge.head("/hit")
    assert head.headers["content-length"] == "7" and head.content == b""


async def test_a_stored_redirect_points_at_the_edge_on_every_hit(plain_edge, httpserver) -> None:
    origin = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": origin + "/new", "Cache-Control": "max-age=600"}
    )
    for _ in range(2):
        r = await plain_edge.get("/old")
        assert r.status_code == 301 and r.headers["location"] == "http://shop.test/new"
    assert "hit" in r.headers["cache-status"]
