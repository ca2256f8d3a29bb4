"""Prometheus metrics of one edge, read from its counters at scrape time.

Served on the separate admin port (``/metrics``) so shopper traffic never reaches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from edge.proxy.httpcache import HttpCache
from edge.proxy.purges import PurgeStats
from edge.proxy.rails import RailService
from edge.proxy.store import ResponseStore

__all__ = ["EdgeCollector", "render"]


@dataclass(eq=False)  # registries key collectors by identity: keep the default hash
class EdgeCollector(Collector):
    """Yields the edge's figures under consistent ``p13n_edge_*`` names."""

    http: HttpCache
    rails: RailService | None
    store: ResponseStore
    purges: PurgeStats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        answers = CounterMetricFamily(
            "p13n_edge_answers", "Edge answers by kind and tier", labels=["kind", "tier"]
        )
        c = self.http.counters
        for tier, n in (
            ("hit", c.hit),
            ("stale", c.stale),
            ("miss", c.miss),
            ("revalidated", c.revalidated),
            ("error", c.error),
            ("pass", c.passed),
        ):
            answers.add_metric(["proxied", tier], n)
        if self.rails is not None:
            for tier, n in self.rails.counters.as_dict().items():
                answers.add_metric(["rail", tier], n)
        yield answers
        collapsed = self.http.collapser.collapsed + (
            self.rails.lists.collapsed if self.rails else 0
        )
        yield CounterMetricFamily(
            "p13n_edge_collapsed_requests",
            "Requests that waited on another's origin fetch",
            value=collapsed,
        )
        if self.rails is not None:
            yield CounterMetricFamily(
                "p13n_edge_exposures_refused",
                "Exposure posts the collector refused (a site key missing, rate limits)",
                value=self.rails.counters.exposures_refused,
            )
        yield CounterMetricFamily(
            "p13n_edge_collapse_unshared",
            "Collapsed requests that fetched on their own (the answer was private or another "
            "Vary variant)",
            value=self.http.counters.unshared,
        )
        background = CounterMetricFamily(
            "p13n_edge_background_revalidations",
            "Background revalidations of stale entries started (one per stale key at a time)",
            labels=["kind"],
        )
        background.add_metric(["proxied"], self.http.collapser.background)
        if self.rails is not None:
            background.add_metric(["rail"], self.rails.flow.revalidations)
        yield background
        yield CounterMetricFamily(
            "p13n_edge_purges_applied", "Pushed purges applied", value=self.purges.applied
        )
        yield GaugeMetricFamily(
            "p13n_edge_purge_lag_ms", "Lag of the last pushed purge", value=self.purges.last_lag_ms
        )
        yield GaugeMetricFamily(
            "p13n_edge_cache_bytes", "Bytes held by the response store", value=self.store.bytes_used
        )
        yield CounterMetricFamily(
            "p13n_edge_origin_requests",
            "Requests sent to the origin",
            value=self.http.upstream.requests,
        )
        hist = HistogramMetricFamily(
            "p13n_edge_origin_latency_ms", "Origin request latency", labels=["kind"]
        )
        for kind, lat in (
            ("proxied", self.http.upstream.latency),
            ("rail", self.rails.latency if self.rails else None),
        ):
            if lat is not None:
                hist.add_metric([kind], lat.buckets(), lat.total_ms)
        yield hist


def render(collector: EdgeCollector) -> bytes:
    """The text exposition of one edge's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
