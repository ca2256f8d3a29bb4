"""``/v1/segment-token`` signs only segments the registry names (issue 16, item 8): a segment
stored under keys since replaced is unknown to every edge, so it gets the anonymous token."""

from __future__ import annotations

import pytest

from cache_keys import ANON_HSEG, new_shopper_id, verify_segment
from cache_keys.wire import SHOPPER_COOKIE
from tests.support import data

pytestmark = pytest.mark.anyio


async def test_an_orphaned_segment_gets_the_anonymous_token(client, redis_client, settings):
    known, orphan = data.hseg("returning|grocery|mid"), "0123456789abcdef"
    data.put_list(redis_client, known, "control", data.items(("bread", 5, "bakery")), "e1")
    a, b = new_shopper_id(), new_shopper_id()
    data.put_shopper(redis_client, a, segment_hseg=known)
    data.put_shopper(redis_client, b, segment_hseg=orphan)
    await client.app.state.p13n.snapshot.refresh()
    now_s = data.NOW_MS / 1000
    for shopper, want in ((a, known), (b, ANON_HSEG)):
        r = await client.get(
            "/v1/segment-token", headers={"cookie": f"{SHOPPER_COOKIE.name}={shopper}"}
        )
        assert r.status_code == 200
        assert verify_segment(r.json()["token"], settings.segment_keys, now_s) == want
