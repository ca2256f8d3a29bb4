"""A repeated ``Sec-GPC`` header at the self-hosted edge: any ``1`` opts out (issue 16, item 6),
the same rule as the origin's and the Worker's (``cache_keys.wire.opted_out``)."""

from __future__ import annotations

import pytest

from cache_keys.wire import SHOPPER_COOKIE
from edge.proxy.app import EdgeRuntime, create_app
from tests.support.asgi import app_client
from tests.support.clock import FakeClock
from tests.support.proxy import proxy_settings
from tests.support.servers import OriginProcess

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("values", "opted_out"),
    [(["1", "0"], True), (["0", "1"], True), (["0", "0"], False), (["1"], True)],
)
async def test_any_sec_gpc_1_of_a_repeated_header_opts_out(
    origin: OriginProcess, clock: FakeClock, values: list[str], opted_out: bool
) -> None:
    settings = proxy_settings(origin)
    app = create_app(settings, EdgeRuntime.open(settings, clock=clock))
    headers = [("sec-gpc", v) for v in values]
    async with app_client(app, base_url="http://shop.test") as edge:
        r = await edge.get("/p13n/v1/rail/home?k=5", headers=headers)
    assert r.status_code == 200
    # An opted-out shopper gets no shopper id minted; anyone else without one gets one.
    minted = any(c.startswith(SHOPPER_COOKIE.name + "=") for c in r.headers.get_list("set-cookie"))
    assert minted is not opted_out
