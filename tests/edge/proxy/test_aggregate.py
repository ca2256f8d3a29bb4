"""Adding up several workers' metric expositions (``edge.proxy.aggregate``): counters and
histograms add, gauges combine by their meaning, offload ratios are computed again."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from edge.proxy.aggregate import aggregate
from edge.proxy.httpcache import HttpCache
from edge.proxy.latency import LatencyHistogram
from edge.proxy.metrics import EdgeCollector, Traffic, render
from edge.proxy.purges import PurgeStats
from edge.proxy.store import ResponseStore
from edge.proxy.upstream import Upstream


def worker(requests: int, fetches: int, lag_ms: float, started: float, latency_ms: float) -> str:
    """One worker's exposition, rendered by the edge's own collector."""
    http = HttpCache(upstream=Upstream(None, "http://origin.test"), store=ResponseStore())  # type: ignore[arg-type]
    http.counters.hit = requests - fetches
    http.upstream.requests = fetches
    http.upstream.latency = LatencyHistogram()
    http.upstream.latency.observe(latency_ms)
    purges = PurgeStats()
    purges.last_lag_ms = lag_ms
    traffic = Traffic(started_s=started, requests=requests, bytes_sent=requests * 10)
    collector = EdgeCollector(
        http=http, rails=None, store=http.store, purges=purges, traffic=traffic
    )
    return render(collector).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_workers_add_up() -> None:
    a = worker(requests=100, fetches=10, lag_ms=5, started=1000, latency_ms=3)
    b = worker(requests=300, fetches=90, lag_ms=40, started=900, latency_ms=3000)
    total = samples(aggregate([a, b]).decode())
    assert total[("p13n_edge_client_requests_total", ())] == 400
    assert total[("p13n_edge_answers_total", (("kind", "proxied"), ("tier", "hit")))] == 300
    assert total[("p13n_edge_origin_latency_ms_count", (("kind", "proxied"),))] == 2
    assert total[("p13n_edge_purge_lag_ms", ())] == 40  # the worst worker
    assert total[("p13n_edge_started_seconds", ())] == 900  # the earliest
    # 1 - 100 / 400, not the mean of 0.9 and 0.7
    assert total[("p13n_edge_offload_ratio", (("by", "requests"),))] == 0.75
    assert total[("p13n_edge_workers_reporting", ())] == 2
    one = samples(aggregate([a]).decode())
    assert one[("p13n_edge_client_requests_total", ())] == 100
