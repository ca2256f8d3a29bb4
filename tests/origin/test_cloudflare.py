"""The Cloudflare purge client against pytest-httpserver standing in for the API."""

from __future__ import annotations

import httpx
import pytest
from werkzeug import Response

from origin.app import create_app
from origin.cloudflare import CloudflarePurger
from origin.settings import Settings
from tests.support.asgi import app_client
from tests.support.data import MERCH, SEGMENT_KEY, TOKENS, bearer
from tests.support.timing import scaled

pytestmark = pytest.mark.anyio
ZONE = "0123456789abcdef0123456789abcdef"
PATH = f"/client/v4/zones/{ZONE}/purge_cache"
OK = {"success": True, "errors": [], "messages": [], "result": {"id": "p1"}}


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
async def purger(httpserver):
    sleeps = Sleeps()
    async with httpx.AsyncClient(timeout=5) as http:
        p = CloudflarePurger(
            http, api_url=httpserver.url_for("/client/v4"), zone_id=ZONE, api_token="cf-token",
            sleep=sleeps,
        )  # fmt: skip
        p.sleeps = sleeps  # type: ignore[attr-defined]
        yield p


async def test_purge_by_tag_sends_tags_with_the_token(httpserver, purger):
    httpserver.expect_ordered_request(
        PATH, method="POST", json={"tags": ["sku:a", "cat:b"]},
        headers={"Authorization": "Bearer cf-token"},
    ).respond_with_json(OK)  # fmt: skip
    outcome = await purger.purge(["sku:a", "cat:b"])
    assert outcome.status == "ok" and outcome.calls == 1
    httpserver.check_assertions()


async def test_more_than_100_tags_are_batched(httpserver, purger):
    tags = [f"sku:s{i}" for i in range(250)]
    for i in range(0, 250, 100):
        httpserver.expect_ordered_request(
            PATH, method="POST", json={"tags": tags[i : i + 100]}
        ).respond_with_json(OK)
    outcome = await purger.purge(tags)
    assert outcome.status == "ok" and outcome.calls == 3
    httpserver.check_assertions()


async def test_everything(httpserver, purger):
    httpserver.expect_ordered_request(
        PATH, method="POST", json={"purge_everything": True}
    ).respond_with_json(OK)
    assert (await purger.purge([], everything=True)).status == "ok"


async def test_rate_limit_is_honoured_then_retried(httpserver, purger):
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_json(
        {"success": False, "errors": [{"code": 10000, "message": "rate limited"}]},
        status=429,
        headers={"Retry-After": "2"},
    )
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_json(OK)
    outcome = await purger.purge(["sku:a"])
    assert outcome.status == "ok" and outcome.calls == 2
    assert purger.sleeps.calls == [2.0]


async def test_long_rate_limit_is_reported_not_slept_through(httpserver, purger):
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"success": False, "errors": [{"code": 971, "message": "Please wait"}]},
        status=429,
        headers={"Retry-After": "120"},
    )
    outcome = await purger.purge(["sku:a"])
    assert outcome.status == "rate_limited" and outcome.retry_after_s == 120
    assert outcome.errors == ({"code": 971, "message": "Please wait"},)
    assert purger.sleeps.calls == []


async def test_client_errors_are_not_retried_and_carry_cloudflare_messages(httpserver, purger):
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"success": False, "errors": [{"code": 1012, "message": "Request must contain tags"}]},
        status=400,
    )
    outcome = await purger.purge(["sku:a"])
    assert outcome.status == "failed" and outcome.calls == 1
    assert outcome.errors[0]["code"] == 1012 and "HTTP 400" in outcome.detail


async def test_success_false_with_200_is_a_failure(httpserver, purger):
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"success": False, "errors": [{"code": 1, "message": "nope"}]}
    )
    assert (await purger.purge(["sku:a"])).status == "failed"


async def test_server_errors_are_retried_with_backoff(httpserver, purger):
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_response(
        Response("bad gateway", status=502)
    )
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_json(OK)
    outcome = await purger.purge(["sku:a"])
    assert outcome.status == "ok" and outcome.calls == 2 and purger.sleeps.calls == [0.2]


async def test_unreachable_api_is_a_failed_outcome_not_an_exception():
    sleeps = Sleeps()
    async with httpx.AsyncClient(timeout=1) as http:
        p = CloudflarePurger(
            http, api_url="http://127.0.0.1:9", zone_id=ZONE, api_token="t", sleep=sleeps
        )
        outcome = await p.purge(["sku:a"])
    assert outcome.status == "failed" and outcome.calls == 3
    assert outcome.detail.startswith("transport:")


async def test_hard_invalidation_calls_cloudflare_and_records_the_outcome(httpserver, redis_url):
    httpserver.expect_ordered_request(
        PATH, method="POST", json={"tags": ["sku:ab-1"]}
    ).respond_with_json(OK)
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_json(
        {"success": False, "errors": [{"code": 971, "message": "Please wait"}]},
        status=429,
        headers={"Retry-After": "600"},
    )
    settings = Settings(
        redis_url=redis_url,
        segment_key=SEGMENT_KEY,
        admin_tokens=dict(TOKENS),
        cloudflare_zone_id=ZONE,
        cloudflare_api_token="cf-token",
        cloudflare_api_url=httpserver.url_for("/client/v4"),
        redis_timeout_ms=round(scaled(1000)),  # not under test: a loaded run answered 503
    )
    app = create_app(settings)
    async with app_client(app) as client:
        h = bearer(MERCH)
        r = await client.post(
            "/v1/admin/invalidations", json={"tags": ["sku:AB-1"], "mode": "hard"}, headers=h
        )
        assert r.json()["cloudflare"]["status"] == "ok"
        soft = await client.post(
            "/v1/admin/invalidations", json={"tags": ["sku:AB-1"], "mode": "soft"}, headers=h
        )
        assert soft.json()["cloudflare"]["status"] == "skipped"
        limited = await client.post(
            "/v1/admin/invalidations", json={"tags": ["cat:x"], "mode": "hard"}, headers=h
        )
        assert limited.status_code == 202
        status = await client.get(f"/v1/admin/invalidations/{limited.json()['id']}", headers=h)
        cf = status.json()["cloudflare"]
        assert cf["status"] == "rate_limited" and cf["retry_after_s"] == 600
        metrics = (await client.get("/metrics")).text
        assert 'p13n_origin_cloudflare_purges_total{outcome="rate_limited"} 1.0' in metrics
    httpserver.check_assertions()
