"""The Grafana dashboard (docs/dashboards/p13n-overview.json): every query answers with data.

A real ``prometheus`` scrapes a running stack (Redis, origin, processor and edge as child
processes, ``ops.stack.Stack``) after shoppers, a malformed event and a purge went through it;
each panel query must return at least one finite sample. Grafana's ``$__rate_interval`` is
replaced by a window that spans the whole run, as Grafana would choose for a 1 s scrape.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cache_keys import new_shopper_id
from ops.cli import main
from ops.stack import Stack, StackInfo
from tests.docs.prometheus import Prometheus, finite

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "dashboards" / "p13n-overview.json"
RATE_WINDOW = "2m"
DATA_TIMEOUT_S = 60.0
# The scrape jobs the alert rules name (docs/alerts/p13n-rules.yml).
JOBS = ("p13n-origin", "p13n-edge", "p13n-processor")

pytestmark = pytest.mark.slow


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel."""
    return [(p["title"], t["expr"]) for p in dashboard()["panels"] for t in p.get("targets", [])]


def promql(expr: str) -> str:
    return expr.replace("$__rate_interval", RATE_WINDOW)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """The whole system, healthy (the processor holds its leases)."""
    s = Stack(directory=tmp_path_factory.mktemp("stack"))
    info = s.start()
    try:
        deadline = time.monotonic() + 30
        while main(["status", "--stack", info.directory, "--json"]) != 0:
            assert time.monotonic() < deadline, "the stack never became healthy"
            time.sleep(0.2)
        yield info
    finally:
        s.stop()


def drive(info: StackInfo) -> None:
    """Shoppers' rails and events, a malformed event and a purge, through the real parts."""
    now = int(time.time() * 1000)
    admin = {"authorization": f"Bearer {info.tokens['admin']}"}
    with httpx.Client(timeout=5.0) as http:
        for n in range(6):
            sid = new_shopper_id()
            # Routes nothing asked for yet: a miss (an origin fetch) first, then hits.
            r = http.get(info.edge_url + f"/p13n/v1/rail/{('pdp', 'cart')[n % 2]}")
            assert r.status_code == 200, r.text
            event = {"v": 1, "type": "view", "user": sid, "item": f"DASH-{n}",
                     "category": "dash", "price": 9.5, "ts": now}  # fmt: skip
            batch = [{**event, "event_id": f"dash-{n}-{i}"} for i in range(3)]
            if n == 0:
                batch.append({**event, "event_id": "dash-bad", "type": "teleport"})
            r = http.post(info.edge_url + "/v1/events", json={"events": batch})
            assert r.status_code < 500, r.text
        r = http.post(
            info.origin_url + "/v1/admin/invalidations",
            json={"tags": ["sku:dash-1"], "mode": "soft", "reason": "dashboard test"},
            headers=admin,
        )
        assert r.status_code < 300, r.text


@pytest.fixture(scope="module")
def prometheus(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    jobs = {
        "p13n-origin": [stack.origin_url],
        "p13n-edge": [stack.edge_admin_url],
        "p13n-processor": [stack.processor_metrics_url],
    }
    prom = Prometheus(jobs, tmp_path_factory.mktemp("prometheus")).start()
    try:
        # Traffic after the first scrape of every part: a rate needs the counters to move
        # between two samples.
        deadline = time.monotonic() + DATA_TIMEOUT_S
        while (up := prom.targets_up()) != dict.fromkeys(JOBS, True):
            assert time.monotonic() < deadline, f"targets not all up: {up}"
            time.sleep(0.5)
        drive(stack)
        yield prom
    finally:
        prom.stop()


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() -> None:
    doc = dashboard()
    assert doc["uid"] and doc["title"] and doc["schemaVersion"] >= 36
    assert [v["name"] for v in doc["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in doc["panels"]:
        assert set(p["gridPos"]) == {"h", "w", "x", "y"}, p["title"]
        if p["type"] != "row":
            assert p["targets"], p["title"]
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]


def test_the_dashboard_covers_what_operators_watch() -> None:
    text = " ".join(expr for _, expr in queries())
    for metric in (
        "p13n_edge_answers_total",  # hit ratio
        "p13n_edge_origin_latency_ms_bucket",  # edge latency (to the origin)
        "p13n_origin_request_seconds_bucket",  # origin latency
        "p13n_origin_degraded_answers_total",
        "p13n_segmenter_consumer_lag",
        "p13n_segmenter_event_to_feature_seconds_bucket",  # freshness
        "p13n_segmenter_dlq_depth",
        "p13n_edge_purge_lag_ms",
    ):
        assert metric in text, metric


def test_prometheus_scrapes_every_part(prometheus: Prometheus) -> None:
    assert prometheus.targets_up() == dict.fromkeys(JOBS, True)
    assert {s["metric"]["job"] for s in prometheus.query("up == 1")} == set(JOBS)


def test_every_dashboard_query_returns_data(prometheus: Prometheus) -> None:
    pending = dict(enumerate(queries()))
    assert len(pending) >= 15
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        for i, (_, expr) in list(pending.items()):
            if finite(prometheus.query(promql(expr))):
                del pending[i]
        if pending:
            time.sleep(1.0)
    assert pending == {}, "queries without data: " + "; ".join(
        f"{title}: {expr}" for title, expr in pending.values()
    )


def test_every_query_is_valid_promql_once_grafanas_variables_are_set(
    prometheus: Prometheus,
) -> None:
    for title, expr in queries():
        assert not re.search(r"\$\w+", promql(expr)), (title, expr)
        prometheus.query(promql(expr))  # raises with Prometheus's error on bad PromQL
