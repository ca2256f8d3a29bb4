"""Prometheus metrics of one edge, read from its counters at scrape time.

Served on the separate admin port (``/metrics``) so shopper traffic never reaches it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from edge.proxy.httpcache import HttpCache
from edge.proxy.purges import PurgeStats
from edge.proxy.rails import RailService
from edge.proxy.store import ResponseStore

__all__ = ["EdgeCollector", "Traffic", "render"]


@dataclass(slots=True)
class Traffic:
    """What this edge sent to clients, and since when (the cost figures' denominators)."""

    started_s: float = field(default_factory=time.time)
    requests: int = 0
    bytes_sent: int = 0


@dataclass(eq=False)  # registries key collectors by identity: keep the default hash
class EdgeCollector(Collector):
    """Yields the edge's figures under consistent ``p13n_edge_*`` names."""

    http: HttpCache
    rails: RailService | None
    store: ResponseStore
    purges: PurgeStats
    traffic: Traffic = field(default_factory=Traffic)

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
        yield from self._costs()
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

    def _costs(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Offload: the share of requests and bytes answered without fetching from the origin
        (every origin fetch counts, background revalidations included: they are origin load)."""
        t, up, rails = self.traffic, self.http.upstream, self.rails
        fetches = up.requests + (rails.origin_requests if rails else 0)
        origin_bytes = up.bytes_in + (rails.origin_bytes if rails else 0)
        yield CounterMetricFamily("p13n_edge_client_requests", "Requests answered",
                                  value=t.requests)  # fmt: skip
        yield CounterMetricFamily("p13n_edge_sent_bytes", "Response body bytes sent to clients",
                                  value=t.bytes_sent)  # fmt: skip
        yield CounterMetricFamily("p13n_edge_origin_fetches", "Fetches from the origin "
                                  "(proxied and rail)", value=fetches)  # fmt: skip
        yield CounterMetricFamily("p13n_edge_origin_bytes", "Body bytes received from the origin",
                                  value=origin_bytes)  # fmt: skip
        offload = GaugeMetricFamily("p13n_edge_offload_ratio", "Share answered without the "
                                    "origin: 1 - origin / sent, by requests or bytes",
                                    labels=["by"])  # fmt: skip
        for by, origin, sent in (("requests", fetches, t.requests),
                                 ("bytes", origin_bytes, t.bytes_sent)):  # fmt: skip
            offload.add_metric([by], max(0.0, 1 - origin / sent) if sent else 0.0)
        yield offload
        yield GaugeMetricFamily("p13n_edge_started_seconds", "When this edge started (epoch s)",
                                value=t.started_s)  # fmt: skip


def render(collector: EdgeCollector) -> bytes:
    """The text exposition of one edge's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
