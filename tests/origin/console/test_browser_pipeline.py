"""Pipeline health in a real browser: lag per partition, dead letters with requeue, the
edges' hit ratio and freshness, and offload with a monthly egress estimate. Its own module,
so its origin has no live edge whose heartbeats would mix with the seeded history."""

from __future__ import annotations

import time

import msgpack
import orjson
import pytest

from segmenter.schema import Keys, partition_of
from tests.support import data
from tests.support.browser import shot, sign_in

pytestmark = pytest.mark.browser
KEYS = Keys("p13n")


def _seed_pipeline(stack) -> tuple[str, str]:
    r, now = stack.redis, int(time.time() * 1000)
    good = {"v": 1, "event_id": "e-requeue", "type": "view", "user": "u-requeue", "item": "S0-001",
            "ts": now - 60_000}  # fmt: skip
    bad = {"v": 1, "event_id": "e-bad", "type": "view", "ts": now}
    good_id = r.xadd(KEYS.dlq, {
        "reason": "$: delivered 6 times, over the limit", "field": "$",
        "raw": msgpack.packb(good), "source": "processor", "user": "u-requeue",
        "received_ms": now, "stream_id": "1-0",
    }).decode()  # fmt: skip
    bad_id = r.xadd(KEYS.dlq, {
        "reason": "user: required", "field": "user", "raw": orjson.dumps(bad),
        "source": "collector", "user": "", "received_ms": now,
    }).decode()  # fmt: skip
    counts = {"hit": 0, "stale": 0, "miss": 0}
    for i in range(20):  # 20 heartbeats over the last 10 minutes: 80% from cache
        counts = {"hit": counts["hit"] + 70, "stale": counts["stale"] + 10,
                  "miss": counts["miss"] + 20}  # fmt: skip
        fields = {"edge": "edge-seeded", "ms": now - (20 - i) * 30_000,
                  "counts": orjson.dumps(counts)}  # fmt: skip
        r.xadd(KEYS.edge_history, fields)
    return good_id, bad_id


def _seed_edge_traffic(stack) -> None:
    """An edge's stored heartbeat (seeded like the rest: the endpoint has its own tests) with
    a day of traffic: 10^9 bytes sent, 10^8 from the origin, 1 000 requests, 250 fetches."""
    traffic = {"requests": 1000, "bytes_sent": 10**9, "origin_fetches": 250,
               "origin_bytes": 10**8, "uptime_s": 86_400}  # fmt: skip
    record = {"edge_id": "edge-costs", "config_etag": "e1", "config_revision": 0,
              "generations": {}, "counts": {}, "applied_purges": [],
              "received_ms": int(time.time() * 1000), "traffic": traffic}  # fmt: skip
    stack.redis.hset(KEYS.edges, "edge-costs", orjson.dumps(record))


def test_pipeline_health_dead_letters_and_requeue(page, stack, tmp_path) -> None:
    good_id, bad_id = _seed_pipeline(stack)
    _seed_edge_traffic(stack)
    sign_in(page, stack, data.ADMIN)
    page.goto(stack.url + "/console/pipeline")
    assert page.locator("#partitions tbody tr").count() == 4
    assert page.inner_text("#hit-ratio") == "80%" and page.inner_text("#freshness") == "88%"
    # offload and the month's egress at the default price: 30 GB to shoppers, 3 GB from origin
    assert page.inner_text("#offload-requests") == "75.0%"
    assert page.inner_text("#offload-bytes") == "90.0%"
    assert page.inner_text("tr[data-edge='edge-costs'] .egress") == "~30.0 GB (2.70)"
    assert page.inner_text("#egress tr[data-line='origin'] .cost") == "0.27"
    assert page.locator("#edge-chart polyline.hit").count() >= 1
    assert "u-requeue" in page.inner_text(f"tr[data-id='{good_id}'] .original")
    shot(page, tmp_path, "pipeline")
    page.locator(f"tr[data-id='{bad_id}'] button.requeue").click()
    assert "still invalid" in page.inner_text(f"tr[data-id='{bad_id}'] .refused")
    page.locator(f"tr[data-id='{good_id}'] button.requeue").click()
    assert "Requeued" in page.inner_text(".notice")
    assert page.locator(f"tr[data-id='{good_id}']").count() == 0
    shot(page, tmp_path, "pipeline-requeued")
    stream = KEYS.stream(partition_of("u-requeue", 4))
    entries = stack.redis.xrange(stream)
    assert any(msgpack.unpackb(f[b"e"])["event_id"] == "e-requeue" for _, f in entries)
