"""One ``/metrics`` for ``p13n edge --workers N``: worker 0 scrapes every other worker's own
figures (``/metrics/worker`` on ``admin_port + i``) and serves the sum over all of them on
the edge's admin port, so a scraper configured with one target sees the whole edge.

Counters and histograms (every bucket, sum and count) add up. Gauges say how they combine:
bytes held add up, the purge lag is the worst worker's, the start time the earliest, and the
offload ratios are computed again from the summed totals (a mean of ratios would weigh an
idle worker like a busy one). ``p13n_edge_workers_reporting`` says how many workers the sum
covers: a worker that does not answer within the timeout is left out, not guessed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["WORKER_PATH", "aggregate", "scrape_all"]

WORKER_PATH = "/metrics/worker"
SCRAPE_TIMEOUT_S = 2.0
_GAUGE_RULES = {
    "p13n_edge_purge_lag_ms": max,
    "p13n_edge_started_seconds": min,
}
_OFFLOAD = "p13n_edge_offload_ratio"
# (by, origin total, sent total) of the offload ratio's two series
_OFFLOAD_PARTS = (
    ("requests", "p13n_edge_origin_fetches_total", "p13n_edge_client_requests_total"),
    ("bytes", "p13n_edge_origin_bytes_total", "p13n_edge_sent_bytes_total"),
)

_Key = tuple[str, tuple[tuple[str, str], ...]]


class _Families(Collector):
    """A registry's view of already built families."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def aggregate(texts: Sequence[str]) -> bytes:
    """The text exposition of the sum of several workers' expositions."""
    shapes: dict[str, Metric] = {}
    values: dict[str, dict[_Key, list[float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            shapes.setdefault(family.name, family)
            series = values.setdefault(family.name, {})
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                series.setdefault(key, []).append(s.value)
    totals = {
        key[0]: sum(vs)
        for name, series in values.items()
        if shapes[name].type == "counter"
        for key, vs in series.items()
    }
    families = []
    for name, shape in shapes.items():
        out = Metric(name, shape.documentation, shape.type)
        for (sample, labels), vs in values[name].items():
            out.add_sample(
                sample, dict(labels), _combine(name, shape.type, dict(labels), vs, totals)
            )
        families.append(out)
    reporting = GaugeMetricFamily(
        "p13n_edge_workers_reporting", "Workers whose figures this sum covers", value=len(texts)
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*families, reporting]))
    return generate_latest(registry)


def _combine(
    name: str, kind: str, labels: dict[str, str], vs: list[float], totals: dict[str, float]
) -> float:
    if kind != "gauge":
        return sum(vs)
    if name == _OFFLOAD:
        for by, origin, sent in _OFFLOAD_PARTS:
            if labels.get("by") == by:
                total = totals.get(sent, 0.0)
                return max(0.0, 1 - totals.get(origin, 0.0) / total) if total else 0.0
    rule = _GAUGE_RULES.get(name)
    return rule(vs) if rule is not None else sum(vs)


async def scrape_all(own: str, peers: Sequence[str]) -> list[str]:
    """This worker's exposition and every peer's that answers (``peers``: admin base URLs)."""
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as client:

        async def one(base: str) -> str | None:
            try:
                r = await client.get(base + WORKER_PATH)
            except httpx.HTTPError:
                return None
            return r.text if r.status_code == 200 else None

        scraped = await asyncio.gather(*(one(p) for p in peers))
    return [own, *(t for t in scraped if t is not None)]
