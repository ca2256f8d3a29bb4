"""The shopper-facing port never forwards the origin's admin plane unless the operator opts
in; an operator may narrow forwarding to prefixes; the origin's redirects point at the edge.

The in-process tests run the edge app in front of the real origin process (``origin`` and
``edge`` fixtures); ``test_edge_process`` checks the same on a served ``p13n edge``.
"""

from __future__ import annotations

import httpx
import pytest

from edge.proxy.forwarding import ClientHop
from edge.proxy.planes import Planes, is_admin_path, rewrite_locations

ADMIN_PATHS = [
    "/v1/admin/experiments",
    "/v1/admin",
    "/console",
    "/console/",
    "/console/static/console.css",
    "/metrics",
    "/openapi.json",
    "/healthz",
    "/readyz",
    "/v1/edge/config",
    "/v1/edge/heartbeat",
    "/v1/segments/abc/list",
    "/v1/segment-token",
    "/v1/recommendations?k=5",
]
# Spellings a router would still route to the admin plane.
DISGUISED = [
    "/v1%2Fadmin/experiments",
    "/%761/admin/experiments",
    "//v1//admin/experiments",
    "/shop/../v1/admin/experiments",
    "/V1/Admin/experiments",
    "/%2e%2e/console",
    "/metrics?x=1",
]


@pytest.mark.parametrize("path", ADMIN_PATHS + DISGUISED)
def test_admin_paths_are_recognised(path: str) -> None:
    assert is_admin_path(path)
    assert not Planes().forwards(path)
    assert Planes(forward_admin=True).forwards(path)


@pytest.mark.parametrize(
    "path", ["/", "/shop/cart", "/v1/events", "/v1/sdk/p13n.js", "/consoles", "/metricsx"]
)
def test_shop_paths_are_forwarded(path: str) -> None:
    assert not is_admin_path(path) and Planes().forwards(path)


def test_an_allow_list_narrows_forwarding() -> None:
    planes = Planes(prefixes=("/shop", "/v1/events"))
    assert planes.forwards("/shop/cart") and planes.forwards("/v1/events")
    assert not planes.forwards("/blog") and not planes.forwards("/shopping")
    assert not Planes(prefixes=("/v1/admin",)).forwards("/v1/admin/x")  # admin needs opt-in


def test_origin_locations_are_rewritten_to_the_edge() -> None:
    hop = ClientHop("10.0.0.1", "https", "shop.example")
    out = rewrite_locations(
        [
            ("location", "http://127.0.0.1:9000/console/?a=1"),
            ("content-location", "http://127.0.0.1:9000/x"),
            ("location", "https://elsewhere.example/y"),
            ("x-other", "http://127.0.0.1:9000/z"),
        ],
        "http://127.0.0.1:9000",
        hop,
    )
    assert out == [
        ("location", "https://shop.example/console/?a=1"),
        ("content-location", "https://shop.example/x"),
        ("location", "https://elsewhere.example/y"),
        ("x-other", "http://127.0.0.1:9000/z"),
    ]
    no_host = rewrite_locations(
        [("location", "http://127.0.0.1:9000/a")], "http://127.0.0.1:9000", ClientHop()
    )
    assert no_host == [("location", "/a")]


@pytest.mark.anyio
async def test_admin_paths_are_not_reachable_through_the_edge(edge: httpx.AsyncClient) -> None:
    # (httpx reads a leading "//" as an authority: that spelling is covered above)
    for path in [p for p in ADMIN_PATHS + DISGUISED if not p.startswith("//")]:
        r = await edge.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json", path
        assert r.json()["type"].endswith("not-found"), path
        assert r.json()["detail"] == "this path is not served on the shopper port", path
    posted = await edge.post("/v1/admin/experiments", json={"key": "x"})
    assert posted.status_code == 404 and "shopper port" in posted.json()["detail"]
    sdk = await edge.get("/v1/sdk/p13n.js")
    assert sdk.status_code == 200 and sdk.headers["content-type"].startswith("text/javascript")


@pytest.mark.anyio
async def test_an_operator_may_opt_in_and_redirects_point_at_the_edge(
    edge: httpx.AsyncClient, origin
) -> None:
    edge.runtime.planes = Planes(forward_admin=True)  # type: ignore[attr-defined]
    metrics = await edge.get("/metrics")
    assert metrics.status_code == 200 and "p13n_origin" in metrics.text
    redirect = await edge.get("/console")
    assert redirect.status_code in (301, 302, 307, 308)
    location = redirect.headers["location"]
    assert location.startswith("http://shop.test/console")
    assert origin.url.split("//", 1)[1] not in location
