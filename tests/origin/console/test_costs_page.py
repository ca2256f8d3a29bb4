"""The pipeline page shows offload and a monthly egress estimate from the edges' heartbeats
(in-process HTTP; the heartbeats go through the real endpoint and its validation)."""

from __future__ import annotations

import re

import pytest

from origin.app import create_app
from origin.settings import Settings
from tests.origin.console.test_pages import sign_in
from tests.support.asgi import app_client
from tests.support.data import ADMIN, SERVICE, TOKENS, bearer

pytestmark = pytest.mark.anyio
DAY = 86_400


def _traffic(requests: int, fetches: int, origin_bytes: int) -> dict[str, int]:
    return {"requests": requests, "bytes_sent": 10**9, "origin_fetches": fetches,
            "origin_bytes": origin_bytes, "uptime_s": DAY}  # fmt: skip


def _text(html: str, pattern: str) -> str:
    match = re.search(pattern, html, re.S)
    assert match, pattern
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


async def test_pipeline_page_shows_offload_and_a_priced_egress_estimate(redis_url):
    settings = Settings(redis_url=redis_url, admin_tokens=dict(TOKENS), partitions=2,
                        egress_price_per_gb=0.5,
                        redis_timeout_ms=2000)  # a loaded machine: no breaker trips  # fmt: skip
    async with app_client(create_app(settings)) as client:
        await sign_in(client, ADMIN)
        before = (await client.get("/console/pipeline")).text
        beats = [("edge-a", _traffic(1000, 100, 25 * 10**7)),  # one day: 30 GB a month each
                 ("edge-b", _traffic(1000, 300, 75 * 10**7)),
                 ("edge-old", None)]  # fmt: skip
        for edge_id, traffic in beats:
            doc = {"edge_id": edge_id, "config_etag": "e1", "counts": {"hit": 1}}
            if traffic is not None:
                doc["traffic"] = traffic
            r = await client.post("/v1/edge/heartbeat", json=doc, headers=bearer(SERVICE))
            assert r.status_code == 204, r.text
        after = (await client.get("/console/pipeline")).text
        api = (await client.get("/v1/admin/pipeline", headers=bearer(ADMIN))).json()
    assert "No live edge reports traffic figures yet." in before
    assert "at 0.5 per GB" in after
    row_a = _text(after, r'<tr data-edge="edge-a">(.*?)</tr>')
    assert row_a.endswith("1,000 90.0% 75.0% ~30.0 GB (15.00)"), row_a
    row_b = _text(after, r'<tr data-edge="edge-b">(.*?)</tr>')
    assert row_b.endswith("1,000 70.0% 25.0% ~30.0 GB (15.00)"), row_b
    assert "no traffic figures (an older edge)" in _text(after, r'data-edge="edge-old">(.*?)</tr>')
    # every live edge reporting traffic together: 400 of 2,000 requests, half of the bytes
    assert _text(after, r'<strong id="offload-requests">(.*?)</strong>') == "80.0%"
    assert _text(after, r'<strong id="offload-bytes">(.*?)</strong>') == "50.0%"
    assert "Over 2 live edges" in after and "2,000 requests" in after
    assert _text(after, r'<tr data-line="edge">(.*?)</tr>').endswith("60.0 30.00")
    assert _text(after, r'<tr data-line="origin">(.*?)</tr>').endswith("30.0 15.00")
    assert api["costs"]["edges"] == 2 and api["costs"]["origin_fetches"] == 400
    by_id = {e["edge_id"]: e["costs"] for e in api["edges"]}
    assert by_id["edge-old"] is None and by_id["edge-a"]["offload_requests"] == 0.9
