"""A repeated ``Sec-GPC`` header at the origin: any ``1`` opts out (issue 16, item 6), the
same rule as both edges' (``cache_keys.wire.opted_out``)."""

from __future__ import annotations

import pytest

from tests.support.data import NOW_MS

pytestmark = pytest.mark.anyio

_EVENT = {"v": 1, "event_id": "gpc-1", "type": "view", "user": "u1", "item": "sku-1", "ts": NOW_MS}


@pytest.mark.parametrize("values", [["0", "1"], ["1", "0"], ["0, 1"]])
async def test_any_sec_gpc_1_of_a_repeated_header_opts_out(client, redis_client, values):
    headers = [("content-type", "application/json"), *(("sec-gpc", v) for v in values)]
    r = await client.post("/v1/events", json=_EVENT, headers=headers)
    assert r.status_code == 202 and r.json()["opted_out"] is True
    assert redis_client.keys("*events*") == []


async def test_a_repeated_sec_gpc_without_1_is_not_an_opt_out(client, redis_client):
    headers = [("content-type", "application/json"), ("sec-gpc", "0"), ("sec-gpc", "0")]
    r = await client.post("/v1/events", json=_EVENT, headers=headers)
    assert r.status_code == 202 and "opted_out" not in r.json()
