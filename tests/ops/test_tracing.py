"""W3C trace context end to end: shopper request -> edge -> exposure event -> stream."""

from __future__ import annotations

import httpx
import msgpack
import redis

from ops.stack import StackInfo
from segmenter.schema import Keys
from tests.support.ops import api
from tests.support.timing import wait_until

KEYS = Keys()
TRACE = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"


def exposures(r: redis.Redis) -> list[dict]:
    out = []
    for p in range(8):
        for _, f in r.xrange(KEYS.stream(p)):
            ev = msgpack.unpackb(f[b"e"])
            if ev["type"] == "exposure" and ev.get("experiment") == "trace-exp":
                out.append(ev)
    return out


def test_exposure_events_carry_the_shoppers_traceparent(stack: StackInfo) -> None:
    exp = {"key": "trace-exp", "name": "Trace", "variations": [{"name": "a"}, {"name": "b"}],
           "weights": [0.5, 0.5]}  # fmt: skip
    assert api(stack, "POST", "/v1/admin/experiments", json=exp).status_code == 201
    assert api(stack, "POST", "/v1/admin/experiments/trace-exp/start").status_code == 200
    r = redis.Redis.from_url(stack.redis_url)
    try:

        def shopped() -> list[dict]:
            resp = httpx.get(stack.edge_url + "/p13n/v1/rail/home",
                             headers={"traceparent": TRACE}, timeout=5)  # fmt: skip
            assert resp.status_code == 200
            return exposures(r)

        found = wait_until(shopped, 20, "no exposure reached the streams", interval_s=0.2)
        assert isinstance(found, list)
        assert {e["traceparent"] for e in found} == {TRACE}
    finally:
        api(stack, "POST", "/v1/admin/experiments/trace-exp/stop")
        r.hdel(KEYS.experiments, "trace-exp")
        r.close()
