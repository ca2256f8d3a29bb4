"""The batch-fed freshness histogram is exposed exactly as prometheus_client's Histogram."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from segmenter.metrics import BatchHistogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def test_batch_histogram_matches_histogram_exposition() -> None:
    values = [0.0, 0.004, 0.005, 0.006, 0.3, 1.0, 12.5, 60.0, 70.0]
    reference = CollectorRegistry()
    hist = Histogram("x_seconds", "doc", buckets=BUCKETS, registry=reference)
    for v in values:
        hist.observe(v)
    mine = CollectorRegistry()
    batch = BatchHistogram("x_seconds", "doc", BUCKETS, mine)
    batch.observe_many(values[:4])
    batch.observe_many(values[4:])
    expected = [
        line for line in generate_latest(reference).decode().splitlines() if "_created" not in line
    ]
    assert generate_latest(mine).decode().splitlines() == expected
