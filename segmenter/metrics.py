"""Processor metrics (Prometheus), on a registry the caller owns (never the global one)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from segmenter.aggregates import PartitionEffects

__all__ = ["DISPOSITIONS", "Metrics"]

DISPOSITIONS = ("applied", "duplicate", "late", "dead", "erased", "skip")
_FRESHNESS_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Counters, gauges and histograms of one processor process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "p13n_segmenter_events", "Stream entries by disposition",
            ["disposition"], registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "p13n_segmenter_rejected", "Entries dead-lettered by the processor, by field",
            ["field"], registry=r,
        )  # fmt: skip
        self.lag = Gauge(
            "p13n_segmenter_consumer_lag", "Entries not yet delivered, per partition",
            ["partition"], registry=r,
        )  # fmt: skip
        self.dlq_depth = Gauge("p13n_segmenter_dlq_depth", "Dead letters waiting", registry=r)
        self.owned = Gauge("p13n_segmenter_partitions_owned", "Leases held", registry=r)
        self.apply_latency = Histogram(
            "p13n_segmenter_batch_apply_seconds", "Load, fold, write and commit of one batch",
            registry=r,
        )  # fmt: skip
        self.freshness = Histogram(
            "p13n_segmenter_event_to_feature_seconds",
            "From the collector's receipt (stream id time) to the commit applying the event",
            buckets=_FRESHNESS_BUCKETS_S, registry=r,
        )  # fmt: skip

    def observe_batch(self, fx: PartitionEffects, apply_s: float, commit_ms: int) -> None:
        """Count a committed batch and its freshness."""
        for name in DISPOSITIONS:
            if fx.counters[name]:
                self.events.labels(name).inc(fx.counters[name])
        for _, rej in fx.dead:
            self.rejected.labels(rej.field).inc()
        self.apply_latency.observe(apply_s)
        for e in fx.accepted:
            self.freshness.observe(max(0.0, (commit_ms - e.key[0]) / 1000))

    def set_lag(self, lags: Mapping[int, int]) -> None:
        for p, n in lags.items():
            self.lag.labels(str(p)).set(n)
