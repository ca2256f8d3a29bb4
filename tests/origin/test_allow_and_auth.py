"""405 answers name every method of their path; a heartbeat without a token is 401, also in
trusted local mode (issue 16, item 7)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from origin.app import create_app
from tests.support.asgi import app_client

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/admin/catalog/SKU-1", {"GET", "HEAD", "PUT"}),
        ("/v1/admin/experiments", {"GET", "HEAD", "POST"}),
        ("/v1/admin/experiments/k1", {"GET", "HEAD", "PATCH"}),
        ("/console/signin", {"GET", "HEAD", "POST"}),
    ],
)
async def test_a_405_allows_every_method_of_the_path(client, path, allowed):
    r = await client.request("TRACE", path)
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed


async def test_a_heartbeat_without_a_token_is_401_in_trusted_local_mode(settings, clock):
    app = create_app(replace(settings, trusted_local=True), clock=clock)
    async with app_client(app) as c:
        r = await c.post("/v1/edge/heartbeat", json={"edge_id": "e1"})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
