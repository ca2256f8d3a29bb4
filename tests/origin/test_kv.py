"""Publishing the edge config to Workers KV, against pytest-httpserver standing in for the API."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from werkzeug import Request, Response

from origin.app import create_app
from origin.kv import EDGE_CONFIG_KEY, KVError, KVWriter, batches
from origin.settings import Settings
from tests.origin.test_cloudflare import Sleeps  # the recording sleep seam of the purge tests
from tests.support.asgi import app_client
from tests.support.data import MERCH, SEGMENT_KEY, TOKENS, bearer

pytestmark = pytest.mark.anyio
ACCOUNT = "0123456789abcdef0123456789abcdef"
NAMESPACE = "fedcba9876543210fedcba9876543210"
PATH = f"/client/v4/accounts/{ACCOUNT}/storage/kv/namespaces/{NAMESPACE}/bulk"
OK = {"success": True, "errors": [], "messages": [], "result": {"successful_key_count": 1}}


@pytest.fixture
async def writer(httpserver):
    async with httpx.AsyncClient(timeout=5) as http:
        yield KVWriter(
            http, api_url=httpserver.url_for("/client/v4"), account_id=ACCOUNT,
            namespace_id=NAMESPACE, api_token="cf-token", sleep=Sleeps(),
        )  # fmt: skip


async def test_pairs_go_to_the_bulk_endpoint_with_the_token(httpserver, writer):
    httpserver.expect_ordered_request(
        PATH, method="PUT", json=[{"key": "edge-config", "value": "{}", "expiration_ttl": 600}],
        headers={"Authorization": "Bearer cf-token"},
    ).respond_with_json(OK)  # fmt: skip
    assert await writer.put_many({"edge-config": "{}"}, expiration_ttl_s=600) == 1
    httpserver.check_assertions()


async def test_more_pairs_than_one_call_takes_are_batched(httpserver, writer):
    assert writer.max_pairs == 10_000  # Cloudflare's limit; the test uses a smaller one
    writer.max_pairs = 4
    values = {f"k{i}": "v" for i in range(10)}
    sizes = []

    def handler(request: Request) -> Response:
        sizes.append(len(request.get_json()))
        return Response(json.dumps(OK), content_type="application/json")

    httpserver.expect_request(PATH, method="PUT").respond_with_handler(handler)
    assert await writer.put_many(values) == 3
    assert sizes == [4, 4, 2]


def test_batches_also_respect_the_byte_limit() -> None:
    pairs = [{"key": f"k{i}", "value": "x" * 100} for i in range(10)]
    out = batches(pairs, 10_000, 400)
    assert [len(b) for b in out] == [3, 3, 3, 1]
    assert all(len(json.dumps(b, separators=(",", ":"))) <= 400 for b in out)


async def test_429_waits_for_retry_after_then_succeeds(httpserver, writer):
    httpserver.expect_ordered_request(PATH, method="PUT").respond_with_json(
        {"success": False, "errors": [{"code": 10048, "message": "rate limited"}]},
        status=429, headers={"Retry-After": "7"},
    )  # fmt: skip
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=12), usegmt=True)
    httpserver.expect_ordered_request(PATH, method="PUT").respond_with_json(
        {}, status=429, headers={"Retry-After": later}
    )
    httpserver.expect_ordered_request(PATH, method="PUT").respond_with_json({}, status=502)
    httpserver.expect_ordered_request(PATH, method="PUT").respond_with_json(OK)
    assert await writer.put_many({"a": "b"}) == 4
    assert writer.sleep.calls[0] == 7
    assert 10 <= writer.sleep.calls[1] <= 12  # the HTTP-date form, relative to now
    assert writer.sleep.calls[2] == 2.0  # backoff after a 5xx
    httpserver.check_assertions()


async def test_a_long_retry_after_is_an_error_not_a_stall(httpserver, writer):
    httpserver.expect_ordered_request(PATH, method="PUT").respond_with_json(
        {"success": False, "errors": [{"code": 10048, "message": "slow down"}]},
        status=429, headers={"Retry-After": "600"},
    )  # fmt: skip
    with pytest.raises(KVError, match=r"HTTP 429 after 1 attempt\(s\), Retry-After 600 s .*slow"):
        await writer.put_many({"a": "b"})
    assert writer.sleep.calls == []


async def test_client_errors_are_not_retried_and_name_cloudflares_reason(httpserver, writer):
    httpserver.expect_ordered_request(PATH, method="PUT").respond_with_json(
        {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}]},
        status=403,
    )
    with pytest.raises(KVError, match=r"HTTP 403 .*10000: Authentication error") as err:
        await writer.put_many({"a": "b"})
    assert err.value.status == 403
    httpserver.check_assertions()


async def test_success_false_or_unwritten_keys_are_errors(httpserver, writer):
    httpserver.expect_ordered_request(PATH, method="PUT").respond_with_json(
        {"success": False, "errors": [{"code": 10021, "message": "value too large"}]}
    )
    httpserver.expect_ordered_request(PATH, method="PUT").respond_with_json(
        {"success": True, "errors": [], "result": {"unsuccessful_keys": ["a"]}}
    )
    with pytest.raises(KVError, match=r"success=false .*value too large"):
        await writer.put_many({"a": "b"})
    with pytest.raises(KVError, match=r"keys not written: \['a'\]"):
        await writer.put_many({"a": "b"})


async def test_server_errors_exhaust_the_attempts(httpserver, writer):
    httpserver.expect_request(PATH, method="PUT").respond_with_json({}, status=503)
    with pytest.raises(KVError, match="HTTP 503 after 4 attempt"):
        await writer.put_many({"a": "b"})
    assert len(httpserver.log) == 4


async def test_transport_errors_are_translated() -> None:
    async with httpx.AsyncClient(timeout=1) as http:
        w = KVWriter(
            http, api_url="http://127.0.0.1:9/client/v4", account_id=ACCOUNT,
            namespace_id=NAMESPACE, api_token="t", sleep=Sleeps(), max_attempts=2,
        )  # fmt: skip
        with pytest.raises(KVError, match="transport error ConnectError"):
            await w.put_many({"a": "b"})


# -- the origin keeps the key current --------------------------------------------------------


def _published(httpserver) -> list[dict]:
    out = []
    for request, _ in httpserver.log:
        (pair,) = request.get_json()
        assert pair["key"] == EDGE_CONFIG_KEY
        out.append(json.loads(pair["value"]))
    return out


async def _poll(done, what: str) -> None:
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)  # a poll with a deadline


async def _until(httpserver, count: int) -> list[dict]:
    await _poll(lambda: len(httpserver.log) >= count, f"fewer than {count} KV writes")
    return _published(httpserver)


async def test_the_origin_publishes_on_start_on_a_purge_and_periodically(
    httpserver, redis_url, clock
):
    httpserver.expect_request(PATH, method="PUT").respond_with_json(OK)
    settings = Settings(
        redis_url=redis_url,
        segment_key=SEGMENT_KEY,
        admin_tokens=dict(TOKENS),
        cloudflare_api_token="cf-token",
        cloudflare_api_url=httpserver.url_for("/client/v4"),
        cloudflare_account_id=ACCOUNT,
        cloudflare_kv_namespace_id=NAMESPACE,
        kv_publish_check_ms=20,
        kv_publish_every_s=3600,
        redis_timeout_ms=5000,  # about publishing, not latency: a loaded machine must not 503
    )
    app = create_app(settings, clock=clock)
    async with app_client(app) as client:
        (first,) = await _until(httpserver, 1)
        served = (await client.get("/v1/edge/config")).json()
        assert first["etag"] == served["etag"] and first["generated_at_ms"] > 0
        r = await client.post(
            "/v1/admin/invalidations",
            json={"tags": ["sku:AB-1"], "mode": "hard"},
            headers=bearer(MERCH),
        )
        assert r.status_code in (200, 202)
        second = (await _until(httpserver, 2))[1]
        assert second["etag"] != first["etag"]
        assert second["generations"]["sku:ab-1"][0] > first["generations"].get("sku:ab-1", [0])[0]
        publisher = app.state.p13n.extras["kv_publisher"]
        seen = publisher.checks
        await _poll(lambda: publisher.checks >= seen + 5, "the publisher stopped checking")
        assert len(httpserver.log) == 2  # five checks, nothing changed: nothing written
        clock.advance(3600)  # every_s later the same config is written again, newly stamped
        third = (await _until(httpserver, 3))[2]
        assert third["etag"] == second["etag"]
        assert third["generated_at_ms"] == second["generated_at_ms"] + 3_600_000


async def test_without_an_account_nothing_is_published(httpserver, redis_url):
    settings = Settings(
        redis_url=redis_url,
        segment_key=SEGMENT_KEY,
        cloudflare_api_token="cf-token",
        cloudflare_api_url=httpserver.url_for("/client/v4"),
        cloudflare_kv_namespace_id=NAMESPACE,  # no account id: not configured
    )
    app = create_app(settings)
    async with app_client(app):
        assert "kv_publisher" not in app.state.p13n.extras
    assert httpserver.log == []
