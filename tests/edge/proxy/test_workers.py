"""``p13n edge --workers 2``: two processes on one port (SO_REUSEPORT), each with its own
store, purge subscription and heartbeat, in front of the real origin and Redis.

The origin reports an invalidation applied only when every live edge id has applied it, and
each worker heartbeats under its own id: while one worker is frozen (SIGSTOP) the hard purge
stays pending on it, and once it is reported applied, each worker's next answer is a miss.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cache_keys import new_shopper_id
from tests.support import data
from tests.support.servers import EdgeProcess, OriginProcess
from tests.support.timing import wait_until

WORKERS = 2


@pytest.fixture
def two_workers(origin: OriginProcess, tmp_path: Path) -> Iterator[EdgeProcess]:
    env = {
        **origin.env,
        "P13N_EDGE_HEARTBEAT_S": "0.2",
        "P13N_EDGE_ID": "edge-multi",
        "P13N_EDGE_SERVICE_TOKEN": data.SERVICE,
    }
    with EdgeProcess(origin, env, log_dir=tmp_path, workers=WORKERS) as edge:
        yield edge


def answers(admin: str, tier: str | None = None, path: str = "/metrics/worker") -> float:
    """A worker's rail answers (of one tier, or all), from its own admin port."""
    return sample_sum(admin + path, "p13n_edge_answers_total", kind="rail", tier=tier)


def sample_sum(url: str, name: str, **labels: str | None) -> float:
    """The sum of the samples ``name`` whose labels match (None: any value)."""
    text = httpx.get(url, timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(v is None or s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def worker_pids(edge: EdgeProcess) -> dict[int, int]:
    """Worker index -> PID, from the supervisor's children in /proc."""
    path = Path(f"/proc/{edge.pid}/task/{edge.pid}/children")
    out = {}
    for pid in map(int, path.read_text().split()):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        out[int(argv[argv.index(b"--worker-index") + 1])] = pid
    return out


def rail(edge: EdgeProcess, cookie: str) -> httpx.Response:
    """One rail request on a new connection (the kernel picks the worker)."""
    r = httpx.get(edge.url + "/p13n/v1/rail/home?k=5", headers={"cookie": cookie}, timeout=5)
    assert r.status_code == 200
    return r


def until_every_worker_answered(edge: EdgeProcess, cookie: str, before: list[float]) -> None:
    def each_answered() -> bool:
        rail(edge, cookie)
        return all(answers(a) > b for a, b in zip(edge.admins, before, strict=True))

    wait_until(each_answered, 30, "the kernel never spread connections over both workers")


def status_of(origin: OriginProcess, inv_id: str) -> dict[str, Any]:
    r = httpx.get(
        f"{origin.url}/v1/admin/invalidations/{inv_id}",
        headers=data.bearer(data.MERCH),
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return dict(r.json()["edges"])


def test_a_hard_purge_is_applied_by_every_worker_before_it_is_reported_applied(
    two_workers: EdgeProcess, origin: OriginProcess
) -> None:
    edge = two_workers
    cookie = data.shopper_cookie(new_shopper_id(), 0, time.time())
    # Both workers store the segment's list (each has its own store): each answered.
    until_every_worker_answered(edge, cookie, [0.0] * WORKERS)
    until_every_worker_answered(edge, cookie, [answers(a) for a in edge.admins])
    assert all(answers(a, "hit") >= 1 for a in edge.admins)  # both hold the entry

    pids = worker_pids(edge)
    assert sorted(pids) == list(range(WORKERS))
    frozen = pids[1]
    os.kill(frozen, signal.SIGSTOP)
    try:
        r = httpx.post(
            origin.url + "/v1/admin/invalidations",
            json={"tags": ["sku:S0-001"], "mode": "hard"},
            headers=data.bearer(data.MERCH),
            timeout=10,
        )
        assert r.status_code == 202, r.text
        inv_id = str(r.json()["id"])
        # Worker 0 applies and reports it; the frozen worker 1 is still live (its last
        # heartbeat is recent), so the invalidation is pending on it, not applied.
        wait_until(
            lambda: status_of(origin, inv_id)["applied"] == 1, 15, "worker 0 never applied it"
        )
        pending = status_of(origin, inv_id)
        assert pending["live"] == WORKERS and pending["pending"] == ["edge-multi-w1"], pending
    finally:
        os.kill(frozen, signal.SIGCONT)
    wait_until(lambda: status_of(origin, inv_id)["applied"] == WORKERS, 15, "never applied by both")
    # Reported applied: neither worker serves the purged entry any more.
    misses = [answers(a, "miss") for a in edge.admins]
    until_every_worker_answered(edge, cookie, [answers(a) for a in edge.admins])
    assert all(answers(a, "miss") > m for a, m in zip(edge.admins, misses, strict=True))


def test_the_admin_port_reports_the_sum_over_the_workers(two_workers: EdgeProcess) -> None:
    edge = two_workers
    cookie = data.shopper_cookie(new_shopper_id(), 0, time.time())
    until_every_worker_answered(edge, cookie, [0.0] * WORKERS)  # each worker answered
    own = [answers(a) for a in edge.admins]
    own_requests = [
        sample_sum(a + "/metrics/worker", "p13n_edge_client_requests_total") for a in edge.admins
    ]
    total = edge.admins[0] + "/metrics"
    assert all(n > 0 for n in own)
    assert answers(edge.admins[0], path="/metrics") == sum(own)
    assert sample_sum(total, "p13n_edge_client_requests_total") == sum(own_requests)
    assert sample_sum(total, "p13n_edge_workers_reporting") == WORKERS
    # worker 1's /metrics is its own
    assert answers(edge.admins[1], path="/metrics") == own[1]
