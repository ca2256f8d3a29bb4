"""``p13n edge`` as operators run it: a real uvicorn process in front of the real origin.

What only the served process shows: the response headers on the wire (one Date, no server
software named), the admin port's ``/metrics`` and ``/healthz``, and a clean stop on SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cache_keys import new_shopper_id
from ops.local.redis import free_port
from tests.support.data import shopper_cookie
from tests.support.servers import EdgeProcess, OriginProcess


@pytest.fixture
def edge_process(origin: OriginProcess, tmp_path: Path) -> Iterator[EdgeProcess]:
    """``p13n edge`` in front of the origin, without heartbeats; stopped by PID."""
    with EdgeProcess(
        origin, {**origin.env, "P13N_EDGE_HEARTBEAT_S": "0"}, log_dir=tmp_path
    ) as edge:
        yield edge


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name} {labels} not in the metrics")


def test_wire_headers_metrics_and_a_clean_stop(edge_process: EdgeProcess) -> None:
    cookie = shopper_cookie(new_shopper_id(), 0, time.time())
    with httpx.Client(base_url=edge_process.url, timeout=5) as client:
        answers = [
            client.get("/p13n/v1/rail/home?k=5", headers={"cookie": cookie}) for _ in range(3)
        ]
    for r in answers:
        assert r.status_code == 200
        assert len(r.headers.get_list("date")) == 1  # ours, not also the server's
        assert "server" not in r.headers
        assert r.headers["cache-control"] == "private, no-store"
    assert [r.headers["cache-status"].rsplit("detail=", 1)[1] for r in answers] == [
        "miss",
        "hit",
        "hit",
    ]

    scrape = httpx.get(edge_process.admin + "/metrics", timeout=5)
    assert scrape.status_code == 200
    text = scrape.text
    assert metric(text, "p13n_edge_answers_total", kind="rail", tier="hit") == 2
    assert metric(text, "p13n_edge_answers_total", kind="rail", tier="miss") == 1
    assert metric(text, "p13n_edge_cache_bytes") > 0
    assert metric(text, "p13n_edge_origin_latency_ms_count", kind="rail") >= 1
    assert metric(text, "p13n_edge_background_revalidations_total", kind="rail") == 0
    assert metric(text, "p13n_edge_collapse_unshared_total") == 0
    health = httpx.get(edge_process.admin + "/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["config_etag"]

    edge_process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM)
    assert edge_process.wait(15) in (0, -signal.SIGTERM)
    stderr = edge_process.output()  # its stderr (stdout is empty: uvicorn logs to stderr)
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr


def test_a_port_in_use_is_one_error_line_not_a_traceback(origin: OriginProcess) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = str(busy.getsockname()[1])
        for ports in (["--port", taken, "--admin-port", str(free_port())],
                      ["--port", str(free_port()), "--admin-port", taken]):  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-m", "ops.cli", "edge", "--origin", origin.url, *ports],
                env={**origin.env, "P13N_EDGE_HEARTBEAT_S": "0"},
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode != 0
            assert "Address already in use" in done.stderr
            assert "Traceback" not in done.stderr, done.stderr


def test_admin_paths_are_not_reachable_on_the_shopper_port(
    edge_process: EdgeProcess, origin: OriginProcess
) -> None:
    paths = ["/v1/admin/experiments", "/console/", "/metrics", "/openapi.json", "/healthz",
             "/v1/edge/config", "/v1%2Fadmin/experiments", "/x/../v1/admin/audit"]  # fmt: skip
    assert httpx.get(origin.url + "/openapi.json", timeout=5).status_code == 200  # it exists
    with httpx.Client(base_url=edge_process.url, timeout=5) as client:
        for path in paths:
            r = client.get(path)
            assert r.status_code == 404, path
            assert r.json()["detail"] == "this path is not served on the shopper port", path
        assert client.get("/v1/sdk/p13n.js").status_code == 200
    # The edge's own admin port still serves its metrics.
    assert httpx.get(edge_process.admin + "/metrics", timeout=5).status_code == 200
