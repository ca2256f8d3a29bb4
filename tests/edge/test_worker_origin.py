"""The Cloudflare Worker in real Pyodide against the real origin (``p13n origin`` under
uvicorn, on its own real Redis seeded with catalog, segment lists and the popular list).

The main flows end to end: miss then hit, stale with the background revalidation, hard and
soft purges and the item mask through the admin API, A/B routing to a variant's list,
exposures reaching the collector's stream, and the origin killed. The Worker, its SDK and the
Pyodide are what the deploy ships (``pyodide_worker``); only the Cache API and the clock are
the harness's doubles. Faults the real origin cannot be made to show stay with the stand-in
(``test_worker_pyodide.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import redis

from cache_keys import sign_segment
from segmenter.schema import Keys, partition_of
from tests.edge.rail_requests import Reply, drain
from tests.edge.rail_requests import worker_get as get
from tests.support import data
from tests.support.data import HSEGS, RING, SIGNING
from tests.support.data import shop_list as list_items
from tests.support.servers import OriginProcess, seeded_origin
from tests.support.worker import WorkerHarness

pytestmark = pytest.mark.pyodide
SHOPPER = "Wk7_origin-shopper-000"
LIST_ROUTE = "/v1/segments/{hseg}/list"
CONFIG_MAX_AGE_MS = 5_000  # the origin fixture's P13N_EDGE_CONFIG_MAX_AGE_S
KEYS = Keys("p13n")


@pytest.fixture
def real_origin(tmp_path: Path) -> Iterator[OriginProcess]:
    """The seeded origin process the self-hosted edge's tests use too."""
    with seeded_origin(tmp_path) as proc:
        yield proc


@pytest.fixture
def worker(pyodide_worker: WorkerHarness, real_origin: OriginProcess) -> WorkerHarness:
    """A new isolate with an empty cache in front of the real origin."""
    pyodide_worker.call("clear_cache")
    env = {
        "ORIGIN_URL": real_origin.url,
        "SEGMENT_KEYS": SIGNING,
        "CONTEXT_KEYS": SIGNING,
        "ORIGIN_TIMEOUT_MS": "3000",  # a loaded test machine, not a budget under test
        "SEGMENT_REFRESH_MS": "0",
    }
    pyodide_worker.call("new_isolate", vars=env)
    return pyodide_worker


def cookie(w: WorkerHarness, seg: int = 0, shopper: str = SHOPPER) -> str:
    expires_s = (w.call("now") // 1000) + 86_400
    return f"p13n_sid={shopper}; p13n_seg={sign_segment(HSEGS[seg], expires_s, RING)}"


def admin(origin: OriginProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = data.bearer(data.ADMIN)
    r = httpx.request(method, origin.url + path, headers=headers, timeout=10, **kw)
    assert r.status_code < 300, r.text
    return r


def new_config(w: WorkerHarness) -> None:
    """Let the isolate's config pass its max-age; the next request refreshes it."""
    w.call("advance", ms=CONFIG_MAX_AGE_MS + 1_000)
    get(w, cookie=cookie(w, seg=2))  # another segment: leaves the entries under test alone
    drain(w)


def around(w: WorkerHarness, change: Callable[[], object]) -> tuple[Reply, Reply]:
    """The answer before ``change`` (stored), and after the isolate took the new config."""
    before = get(w, cookie=cookie(w))
    drain(w)
    change()
    new_config(w)
    return before, get(w, cookie=cookie(w))


def poll(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 15
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)  # a poll with a deadline


def test_miss_then_hit(worker: WorkerHarness, real_origin: OriginProcess) -> None:
    first = get(worker, cookie=cookie(worker))
    assert first.status == 200 and first.detail == "miss"
    assert first.items == [i.item for i in list_items(0)][:12][: len(first.items)]
    assert first.items[0] == "S0-000" and first.json["degraded"] is False
    drain(worker)
    second = get(worker, cookie=cookie(worker))
    assert second.detail == "hit" and second.items == first.items
    assert real_origin.requests_to(LIST_ROUTE) == 1
    (entry,) = worker.call("cache")["entries"]
    assert f"/{HSEGS[0]}/" in entry["url"] and SHOPPER not in str(entry)


def test_stale_is_served_while_it_revalidates(
    worker: WorkerHarness, real_origin: OriginProcess
) -> None:
    get(worker, cookie=cookie(worker))
    drain(worker)
    worker.call("advance", ms=90_000)  # past max-age 60 s, inside stale-while-revalidate
    stale = get(worker, cookie=cookie(worker))
    assert stale.detail == "stale-while-revalidate" and stale.pending >= 1
    drain(worker)
    assert real_origin.requests_to(LIST_ROUTE) >= 2  # the revalidation reached the origin
    assert get(worker, cookie=cookie(worker)).detail == "hit"


def test_hard_purge_of_an_item_drops_the_entry_and_the_item(
    worker: WorkerHarness, real_origin: OriginProcess
) -> None:
    gone = "S0-001"  # the second item of segment 0's list
    before, after = around(worker, lambda: admin(
        real_origin, "POST", "/v1/admin/invalidations",
        json={"tags": [f"sku:{gone}"], "mode": "hard"},
    ))  # fmt: skip
    assert gone in before.items
    assert after.detail == "miss"  # unservable at once, not merely stale
    assert gone not in after.items and after.items[0] == before.items[0]


def test_soft_purge_serves_stale_and_revalidates(
    worker: WorkerHarness, real_origin: OriginProcess
) -> None:
    _, soft = around(worker, lambda: admin(
        real_origin, "POST", "/v1/admin/invalidations",
        json={"tags": ["route:home"], "mode": "soft"},
    ))  # fmt: skip
    assert soft.detail == "stale-while-revalidate"
    drain(worker)
    assert get(worker, cookie=cookie(worker)).detail == "hit"


def test_an_out_of_stock_item_is_masked_at_the_edge(
    worker: WorkerHarness, real_origin: OriginProcess
) -> None:
    gone = "S0-000"

    def out_of_stock() -> None:
        admin(real_origin, "PUT", f"/v1/admin/catalog/{gone}",
              json={"category": "dairy", "price": 1.0, "stock": 0})  # fmt: skip
        config = httpx.get(real_origin.url + "/v1/edge/config", timeout=10).json()
        assert gone in config["item_mask"]

    before, after = around(worker, out_of_stock)
    assert gone in before.items
    assert gone not in after.items and len(after.items) == len(before.items)


def test_ab_routing_and_exposures_reach_the_collector(
    worker: WorkerHarness, real_origin: OriginProcess
) -> None:
    r = redis.Redis.from_url(real_origin.redis.url)
    data.put_list(r, HSEGS[0], "trending", list_items(7), '"trend-1"')
    exp = {
        "key": "rail-algo",
        "name": "Rail algorithm",
        "routes": ["home"],
        "variations": [{"name": "control"}, {"name": "trending", "list_variant": "trending"}],
        "weights": [0.0, 1.0],
    }
    admin(real_origin, "POST", "/v1/admin/experiments", json=exp)
    admin(real_origin, "POST", "/v1/admin/experiments/rail-algo/start")
    new_config(worker)
    reply = get(worker, cookie=cookie(worker))
    assert reply.json["variants"] == {"rail-algo": "trending"}
    assert reply.items[0] == "S7-000"  # the variant's own list
    drain(worker)
    (entry,) = [e for e in worker.call("cache")["entries"] if f"/{HSEGS[0]}/" in e["url"]]
    assert "/rail-algo." in entry["url"]
    try:
        stream = KEYS.stream(partition_of(SHOPPER, 8))
        poll(lambda: r.xlen(stream) > 0, "no event reached the collector's stream")
        events = [msgpack.unpackb(f[b"e"]) for _, f in r.xrange(stream)]
    finally:
        r.close()
    exposures = [e for e in events if e["type"] == "exposure"]
    assert exposures and all(e["user"] == SHOPPER for e in exposures)
    assert {(e["experiment"], e["variant"]) for e in exposures} == {("rail-algo", "trending")}


def test_origin_down_serves_stale_then_the_default_list(
    worker: WorkerHarness, real_origin: OriginProcess
) -> None:
    fresh = get(worker, cookie=cookie(worker))
    drain(worker)
    popular = [i.item for i in list_items(9, 20)]
    real_origin.kill()
    worker.call("advance", ms=400_000)  # past stale-while-revalidate, inside stale-if-error
    stale = get(worker, cookie=cookie(worker))
    assert stale.status == 200 and stale.detail == "stale-if-error"
    assert stale.items == fresh.items and stale.json["degraded"] is True
    drain(worker)
    miss = get(worker, cookie=cookie(worker, seg=1))  # nothing stored for this segment
    assert miss.status == 200 and miss.detail == "default"
    assert set(miss.items) <= set(popular)  # the config's default list: the popular items
