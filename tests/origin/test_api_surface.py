"""OpenAPI matches the mounted routes; errors are problem+json; bodies are limited and strict."""

from __future__ import annotations

import pytest

from origin.app import create_app
from origin.openapi import OPERATIONS, mounted_operations
from origin.settings import Settings
from tests.support.asgi import app_client
from tests.support.data import EXPER, TOKENS, bearer

pytestmark = pytest.mark.anyio


async def test_every_route_is_in_openapi_and_nothing_else(redis_url):
    app = create_app(Settings(redis_url=redis_url, bench_baseline=True))
    async with app_client(app) as client:
        doc = (await client.get("/openapi.json")).json()
    served = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    mounted = mounted_operations(app.routes)
    assert served == mounted
    assert mounted <= set(OPERATIONS)
    assert ("/v1/bench/baseline", "get") in served


async def test_baseline_route_is_absent_unless_enabled(client):
    doc = (await client.get("/openapi.json")).json()
    assert "/v1/bench/baseline" not in doc["paths"]
    assert (await client.get("/v1/bench/baseline")).status_code == 404


async def test_problem_json_shape(client):
    r = await client.get("/v1/admin/experiments/missing", headers=bearer(EXPER))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith("/not-found") and body["title"] and body["detail"]
    assert body["instance"] == "/v1/admin/experiments/missing"
    r = await client.delete("/v1/recommendations")
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"


async def test_body_limit_and_strict_json(redis_url):
    settings = Settings(redis_url=redis_url, admin_tokens=dict(TOKENS), max_body_bytes=64)
    async with app_client(create_app(settings)) as client:
        h = bearer(EXPER)
        big = {"key": "k", "description": "x" * 200, "variations": []}
        r = await client.post("/v1/admin/experiments", json=big, headers=h)
        assert r.status_code == 413 and "64-byte" in r.json()["detail"]
        r = await client.post(
            "/v1/admin/experiments",
            content=b"{not json",
            headers={**h, "Content-Type": "application/json"},
        )
        assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
        r = await client.post(
            "/v1/admin/experiments",
            content=b"<x/>",
            headers={**h, "Content-Type": "application/xml"},
        )
        assert r.status_code == 400 and "content-type" in r.json()["detail"]
