"""A real uvicorn origin process (``p13n origin``) on real Redis, stopped by PID."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from ops.local.redis import RedisServer
from origin.settings import SECRET_SETTINGS
from tests.support import data
from tests.support.data import MERCH, SEGMENT_KEY, bearer, sid
from tests.support.servers import OriginProcess


@pytest.fixture
def origin_process(redis_factory, tmp_path: Path) -> Iterator[tuple[str, RedisServer, Path]]:
    server = redis_factory()
    r = redis.Redis.from_url(server.url)
    data.put_popular(r, data.items(("pop1", 9, "toys"), ("pop2", 8, "food")))
    seg = data.hseg("returning|grocery|mid")
    data.put_list(r, seg, "control", data.items(("bread", 5, "bakery")), "v1")
    data.put_shopper(r, sid(1), segment_hseg=seg, recent=["x"], affinity={"bakery": 1.0})
    r.close()
    env = {
        **os.environ,
        "P13N_REDIS_URL": server.url,
        "P13N_SEGMENT_KEY": SEGMENT_KEY.decode(),
        **{name: "k1:server-test-secret-0123456789" for name in SECRET_SETTINGS},
        "P13N_ADMIN_TOKENS": ",".join(f"{role}:{tok}" for tok, role in data.TOKENS.items()),
        "P13N_REDIS_TIMEOUT_MS": "300",
        "P13N_BREAKER_MS": "200",
    }
    args = ("--workers", "2", "--access-log")
    with OriginProcess(server, env, args=args, log_dir=tmp_path) as proc:
        yield proc.url, server, proc.log_path


def test_real_uvicorn_origin_end_to_end(origin_process) -> None:
    base, server, log = origin_process
    shopper = sid(1)
    with httpx.Client(base_url=base, timeout=5) as c:
        r = c.get("/v1/recommendations", headers={"Cookie": f"p13n_sid={shopper}"})
        assert r.status_code == 200 and r.json()["degraded"] is False
        assert r.json()["items"][0]["item"] == "bread"
        assert len(r.headers.get_list("set-cookie")) == 2
        assert c.get("/readyz").status_code == 200
        inv = c.post(
            "/v1/admin/invalidations", json={"tags": ["sku:bread"], "mode": "hard"},
            headers=bearer(MERCH),
        )  # fmt: skip
        assert inv.status_code == 202
        assert "sku:bread" in c.get("/v1/edge/config").json()["generations"]
        metrics = c.get("/metrics").text
        assert "p13n_origin_request_seconds_bucket" in metrics
        assert "p13n_origin_redis_seconds_bucket" in metrics
        server.kill()
        for _ in range(4):  # two workers: each meets the dead store
            r = c.get("/v1/recommendations", headers={"Cookie": f"p13n_sid={shopper}"})
            assert r.status_code == 200 and r.json()["degraded"] is True
            assert [i["item"] for i in r.json()["items"]] == ["pop1", "pop2"]
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200
        r = c.get("/v1/recommendations", params={"user": shopper}, headers=bearer(data.SERVICE))
        assert r.status_code == 200
    text = log.read_text()
    assert '"route":"/v1/recommendations"' in text
    assert shopper not in text  # no shopper id in any log line
