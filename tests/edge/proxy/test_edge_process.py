"""``p13n edge`` as operators run it: a real uvicorn process in front of the real origin.

What only the served process shows: the response headers on the wire (one Date, no server
software named), the admin port's ``/metrics`` and ``/healthz``, and a clean stop on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cache_keys import new_shopper_id
from ops.local.redis import free_port
from tests.edge.proxy.conftest import SIGNING, OriginProcess, shopper_cookie


@dataclass
class EdgeProcess:
    proc: subprocess.Popen[bytes]
    url: str
    admin: str


@pytest.fixture
def edge_process(origin: OriginProcess) -> Iterator[EdgeProcess]:
    port, admin = free_port(), free_port()
    env = {**origin.env, "SEGMENT_KEYS": SIGNING, "CONTEXT_KEYS": SIGNING}
    env["P13N_EDGE_HEARTBEAT_S"] = "0"
    args = ["--origin", origin.url, "--port", str(port), "--admin-port", str(admin)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "edge", *args, "--redis-url", origin.redis.url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    edge = EdgeProcess(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(edge.admin + "/healthz", timeout=1).json()
                if health["personalization"]:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"edge did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield edge
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        proc.stderr.close()  # type: ignore[union-attr]


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

    edge_process.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM)
    assert edge_process.proc.wait(timeout=15) in (0, -signal.SIGTERM)
    stderr = edge_process.proc.stderr.read().decode()  # type: ignore[union-attr]
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
