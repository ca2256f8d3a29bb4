"""Heartbeats carry the edge's traffic counters to a real origin, whose pipeline overview
turns them into offload and a monthly egress estimate; an origin that refuses the field
(older than it) is recognised by the field its 400 names."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cache_keys.costs import TRAFFIC_FIELDS
from edge.proxy.heartbeat import heartbeat_doc, refuses_traffic
from tests.support import data
from tests.support.servers import OriginProcess
from tests.support.timing import async_wait_until

pytestmark = pytest.mark.anyio
LIST_PATH = "/v1/sdk/p13n.js"  # a page any shop serves through the edge (cacheable)


async def _edge_costs(origin: OriginProcess, edge_id: str) -> dict[str, Any] | None:
    """The edge's priced traffic in the origin's pipeline overview (None while the origin's
    Redis breaker is open on a loaded machine, or before the edge reported)."""
    async with httpx.AsyncClient(base_url=origin.url, timeout=5) as admin:
        r = await admin.get("/v1/admin/pipeline", headers=data.bearer(data.ADMIN))
    if r.status_code == 503:
        return None
    assert r.status_code == 200, r.text
    costs: dict[str, Any] | None = {e["edge_id"]: e["costs"] for e in r.json()["edges"]}.get(
        edge_id
    )
    return costs


async def test_heartbeats_carry_traffic_to_the_origins_offload_figures(edge, origin) -> None:
    answers = [await edge.get(LIST_PATH) for _ in range(3)]
    assert [r.status_code for r in answers] == [200] * 3
    doc = heartbeat_doc(edge.runtime, 0)
    assert set(doc["traffic"]) == set(TRAFFIC_FIELDS) and doc["traffic"]["requests"] == 3
    assert doc["traffic"]["bytes_sent"] == sum(len(r.content) for r in answers)
    seen: list[dict[str, Any]] = []

    async def reported() -> bool:
        costs = await _edge_costs(origin, "edge-test")
        if costs is not None and costs["requests"] == 3:
            seen.append(costs)
        return bool(seen)

    await async_wait_until(reported, 15, "no heartbeat with traffic counters reached the origin")
    costs = seen[0]
    fetches = costs["origin_fetches"]  # the first answer's miss, and any revalidation since
    assert fetches >= 1 and costs["bytes_sent"] == doc["traffic"]["bytes_sent"]
    assert costs["offload_requests"] == max(0.0, round(1 - fetches / 3, 4))
    assert costs["price_per_gb"] == 0.09  # the default: the origin's environment sets none


async def test_an_origin_refusing_the_field_is_told_from_other_refusals(origin) -> None:
    beat = {"edge_id": "edge-x", "config_etag": "e", "counts": {}}
    async with httpx.AsyncClient(base_url=origin.url, timeout=5) as client:
        refused = await client.post("/v1/edge/heartbeat", json={**beat, "traffic": [1]},
                                    headers=data.bearer(data.SERVICE))  # fmt: skip
        other = await client.post("/v1/edge/heartbeat", json={**beat, "counts": {"hit": -1}},
                                  headers=data.bearer(data.SERVICE))  # fmt: skip
    assert refused.status_code == other.status_code == 400
    assert refuses_traffic(refused) and not refuses_traffic(other)
