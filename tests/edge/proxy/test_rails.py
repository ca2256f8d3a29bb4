"""The self-hosted edge's rail service keeps nothing per shopper between requests.

An answer reranked by a shopper's context cookie is that shopper's alone: kept after the
response, it is memory no other request reuses (and a trace of one shopper's cart). The
rail service in front of the stand-in origin answers shoppers with different contexts from
one stored entry; then nothing reachable from the service holds any of their bodies.
"""

from __future__ import annotations

import gc
import time
import types
from collections.abc import Iterator

import pytest

from cache_keys.wire import CONTEXT_COOKIE, ContextCookie, encode_context
from edge.proxy.app import EdgeRuntime, create_app
from edge.proxy.settings import ProxySettings
from tests.edge.rail_requests import SHOP, config_doc, shopper_cookie, valid_token
from tests.support.asgi import app_client
from tests.support.clock import FakeClock
from tests.support.edge import KEYRING
from tests.support.proxy import core_settings
from tests.support.worker import StandinOrigin

pytestmark = pytest.mark.anyio
BUDGET_MS = 1500


def _reachable(root: object) -> Iterator[object]:
    """Every object reachable from ``root`` through instances and containers; not through
    modules, classes or functions (their globals reach the whole interpreter)."""
    seen, todo = {id(root)}, [root]
    while todo:
        obj = todo.pop()
        yield obj
        for ref in gc.get_referents(obj):
            if isinstance(ref, (types.ModuleType, type, types.FunctionType)) or id(ref) in seen:
                continue
            seen.add(id(ref))
            todo.append(ref)


async def test_answers_reranked_for_a_shopper_are_not_kept(standin_origin: StandinOrigin) -> None:
    standin_origin.control("reset", {})
    standin_origin.control("config", config_doc())
    core = core_settings(
        standin_origin.url, KEYRING, origin_timeout_ms=BUDGET_MS, segment_refresh_ms=BUDGET_MS
    )
    settings = ProxySettings(core=core, origin_url=standin_origin.url, heartbeat_s=0)
    runtime = EdgeRuntime.open(settings, clock=FakeClock(time.time()))
    cookie = shopper_cookie(token=valid_token())
    async with app_client(create_app(settings, runtime), base_url=SHOP) as client:
        first = await client.get("/p13n/v1/rail/home", headers={"cookie": cookie})
        assert runtime.rails is not None
        await runtime.rails.drain()
        items = [i["item"] for i in first.json()["items"]]
        bodies = set()
        for n, item in enumerate(items):  # each shopper has another item in the cart
            ctx = ContextCookie(cart=(item,), issued_at_s=int(time.time()) - n)
            personal = f"{cookie}; {CONTEXT_COOKIE.name}={encode_context(ctx, KEYRING)}"
            r = await client.get("/p13n/v1/rail/home", headers={"cookie": personal})
            assert "detail=hit" in r.headers["cache-status"] and item not in r.text
            bodies.add(r.content)
        assert len(bodies) == len(items) > 1
        held = [o for o in _reachable(runtime.rails) if isinstance(o, (bytes, str))]
        assert not bodies & {o.encode() if isinstance(o, str) else o for o in held}
