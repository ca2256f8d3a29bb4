"""Processor metrics (Prometheus), on a registry the caller owns (never the global one)."""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import Counter as Counter_
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from segmenter.aggregates import PartitionEffects
from segmenter.event import FIELDS, version_of
from segmenter.registry import VERSIONS

__all__ = ["DISPOSITIONS", "BatchHistogram", "Metrics"]

DISPOSITIONS = ("applied", "duplicate", "late", "dead", "erased", "skip")
_FRESHNESS_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class BatchHistogram(Collector):
    """A label-less histogram fed a whole batch of observations at once (the freshness of
    every event of a batch), exposed as prometheus_client's ``Histogram`` would be: one
    lock and one bucket search per observation instead of a ``Histogram.observe`` each."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float],
                 registry: CollectorRegistry) -> None:  # fmt: skip
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(float(b) for b in buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self._lock = threading.Lock()  # collect() runs on the metrics server's thread
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        counts = [0] * len(self.counts)
        total = 0.0
        for v in values:
            counts[bisect.bisect_left(self.bounds, v)] += 1
            total += v
        with self._lock:
            self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
            self.sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cumulative = list(itertools.accumulate(self.counts))
            total = self.sum
        les = [repr(b) for b in self.bounds] + ["+Inf"]  # as Histogram writes bounds < 1e6
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=list(zip(les, cumulative, strict=True)),
            sum_value=total,
        )  # fmt: skip


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
        # Every known field at 0 from the start ("$" is the entry as a whole), so a rate()
        # alert sees the first rejection instead of a series that appears with it.
        for name in sorted({*FIELDS, "$"}):
            self.rejected.labels(name)
        self.versions = Counter(
            "p13n_segmenter_event_versions", "Accepted events by schema version (on the stream)",
            ["v"], registry=r,
        )  # fmt: skip
        for v in VERSIONS:
            self.versions.labels(str(v))
        self.reconcile_differences = Gauge(
            "p13n_segmenter_reconcile_differences",
            "Values the last batch reconciliation found different from the stream's",
            ["aggregate"], registry=r,
        )  # fmt: skip
        for name in ("popularity", "covisitation", "experiments"):
            self.reconcile_differences.labels(name)
        self.reconcile_runs = Counter(
            "p13n_segmenter_reconcile_runs", "Scheduled reconciliations by outcome",
            ["outcome"], registry=r,
        )  # fmt: skip
        for outcome in ("clean", "differences", "partial", "failed"):
            self.reconcile_runs.labels(outcome)
        self.reconcile_repaired = Counter(
            "p13n_segmenter_reconcile_repaired", "Aggregate values rewritten from the batch",
            registry=r,
        )  # fmt: skip
        self.lag = Gauge(
            "p13n_segmenter_consumer_lag", "Entries not yet delivered, per partition",
            ["partition"], registry=r,
        )  # fmt: skip
        self._lag_partitions: set[int] = set()
        self.dlq_depth = Gauge("p13n_segmenter_dlq_depth", "Dead letters waiting", registry=r)
        self.owned = Gauge("p13n_segmenter_partitions_owned", "Leases held", registry=r)
        self.apply_latency = Histogram(
            "p13n_segmenter_batch_apply_seconds", "Load, fold, write and commit of one batch",
            registry=r,
        )  # fmt: skip
        self.freshness = BatchHistogram(
            "p13n_segmenter_event_to_feature_seconds",
            "From the collector's receipt (stream id time) to the commit applying the event",
            _FRESHNESS_BUCKETS_S, r,
        )  # fmt: skip

    def observe_batch(self, fx: PartitionEffects, apply_s: float, commit_ms: int) -> None:
        """Count a committed batch and its freshness."""
        for name in DISPOSITIONS:
            if fx.counters[name]:
                self.events.labels(name).inc(fx.counters[name])
        for _, rej in fx.dead:
            self.rejected.labels(rej.field).inc()
        by_version = Counter_(version_of(e.event) for e in fx.accepted if e.event is not None)
        for v, n in by_version.items():
            self.versions.labels(str(v)).inc(n)
        self.apply_latency.observe(apply_s)
        self.freshness.observe_many(max(0.0, (commit_ms - e.key[0]) / 1000) for e in fx.accepted)

    def observe_reconcile(self, differences: Mapping[str, int], repaired: int,
                          partial: bool) -> None:  # fmt: skip
        """Record one reconciliation run."""
        for name, n in differences.items():
            self.reconcile_differences.labels(name).set(n)
        self.reconcile_repaired.inc(repaired)
        outcome = "differences" if any(differences.values()) else "clean"
        self.reconcile_runs.labels("partial" if partial else outcome).inc()

    def set_lag(self, lags: Mapping[int, int]) -> None:
        """Lag of the partitions this process owns; a partition it no longer owns is dropped
        (its new owner reports it), so no stale value lingers in the sum."""
        for p in self._lag_partitions - set(lags):
            self.lag.remove(str(p))
        for p, n in lags.items():
            self.lag.labels(str(p)).set(n)
        self._lag_partitions = set(lags)
