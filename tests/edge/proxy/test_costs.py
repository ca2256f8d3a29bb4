"""Cost figures end to end: a real edge process in front of the real origin reports offload
and bytes, and ``p13n status`` turns them into offload and a monthly egress estimate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

from cache_keys import new_shopper_id
from ops.costs import edge_costs, price_per_gb
from tests.edge.proxy.test_edge_process import edge_process, metric
from tests.support.data import shopper_cookie
from tests.support.servers import EdgeProcess, OriginProcess

__all__ = ["edge_process"]  # the fixture, used by name below


def _status(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ops.cli", "status", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    return done.stdout


def test_offload_and_egress_from_a_real_edge(edge_process: EdgeProcess, origin: OriginProcess):
    cookie = shopper_cookie(new_shopper_id(), 0, time.time())
    with httpx.Client(base_url=edge_process.url, timeout=5) as client:
        answers = [client.get("/p13n/v1/rail/home?k=5", headers={"cookie": cookie})
                   for _ in range(4)]  # fmt: skip
    assert [r.status_code for r in answers] == [200] * 4
    text = httpx.get(edge_process.admin + "/metrics", timeout=5).text
    assert metric(text, "p13n_edge_client_requests_total") == 4
    assert metric(text, "p13n_edge_sent_bytes_total") == sum(len(r.content) for r in answers)
    fetches = metric(text, "p13n_edge_origin_fetches_total")
    # every origin fetch counts, background revalidations of a busy machine's stale entries
    # too: the answers' own misses are the least of them
    misses = sum(r.headers["cache-status"].endswith("detail=miss") for r in answers)
    assert misses <= fetches == metric(text, "p13n_edge_origin_latency_ms_count", kind="rail")
    assert 1 <= misses < 4
    offload = 1 - fetches / 4
    assert metric(text, "p13n_edge_origin_bytes_total") > 0
    assert metric(text, "p13n_edge_offload_ratio", by="requests") == max(0.0, offload)
    costs = edge_costs(text, time.time(), 0.1)
    assert costs is not None and costs["offload_requests"] == max(0.0, offload)
    assert costs["edge_egress_gb_month"] > 0 and costs["price_per_gb"] == 0.1

    env = {**os.environ, "P13N_EGRESS_PRICE_PER_GB": "0.05"}
    args = ["--stack", "/nonexistent", "--origin", origin.url, "--edge-admin",
            edge_process.admin, "--redis-url", origin.redis.url]  # fmt: skip
    doc = json.loads(_status(env, *args, "--json"))
    later = doc["edge"]["costs"]  # a background revalidation may have fetched since
    assert later["origin_fetches"] >= fetches and later["requests"] == 4
    assert later["offload_requests"] == max(0.0, round(1 - later["origin_fetches"] / 4, 4))
    assert doc["edge"]["costs"]["price_per_gb"] == 0.05
    assert doc["origin"]["edge_bytes_served"] >= metric(text, "p13n_edge_origin_bytes_total")
    line = _status(env, *args)
    assert "% of requests" in line and "offload" in line and "at 0.05/GB" in line


def test_the_price_setting_is_checked() -> None:
    assert price_per_gb({}) == 0.09
    assert price_per_gb({"P13N_EGRESS_PRICE_PER_GB": "0.02"}) == 0.02
    for bad in ("cheap", "-1"):
        try:
            price_per_gb({"P13N_EGRESS_PRICE_PER_GB": bad})
        except ValueError as exc:
            assert "P13N_EGRESS_PRICE_PER_GB" in str(exc)
        else:
            raise AssertionError(bad)
