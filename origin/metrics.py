"""Prometheus metrics, the timing middleware, and structured access logs.

Each app owns its own ``CollectorRegistry`` (two apps in one test process never collide).
Under several uvicorn workers each worker exposes its own figures; a scraper sums them.

Access log lines are JSON with the route *template* (``/v1/segments/{hseg}/list``), never
the raw path or query string, so no shopper id (``?user=``) ever reaches a log line.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segmenter.registry import VERSIONS

__all__ = ["DEGRADED_REASONS", "AccessLogMiddleware", "Metrics", "routes"]
# Why a recommendation was answered degraded (origin.recommend.endpoint); each series exists
# at 0 from the start, so a rate() alert sees the first degraded answer.
DEGRADED_REASONS = ("redis", "error")

# Route templates of the admin plane (operators reach it directly, never through an edge).
ADMIN_PREFIXES = ("/v1/admin", "/console", "/metrics", "/openapi", "/healthz", "/readyz")
ACCESS_LOG = logging.getLogger("p13n.origin.access")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Client clocks drift and batches wait in SDK buffers: ingest latency spans ms to minutes.
_HOP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """The origin's metrics, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            "p13n_origin_request_seconds",
            "Request latency by route template, method and status class",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_seconds = Histogram(
            "p13n_origin_redis_seconds",
            "Latency of one pipelined Redis round trip, by operation",
            ["op", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.event_ingest_seconds = Histogram(
            "p13n_origin_event_ingest_seconds",
            "Event time (client clock) to the collector's receipt, per accepted event",
            buckets=_HOP_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "p13n_origin_events",
            "Events received by the collector, by outcome (accepted | rejected)",
            ["outcome"],
            registry=r,
        )
        self.rejected = Counter(
            "p13n_origin_events_rejected",
            "Events the collector dead-lettered, by the field at fault",
            ["field"],
            registry=r,
        )
        self.event_versions = Counter(
            "p13n_origin_event_versions",
            "Events received by the collector, by schema version (as sent) and outcome",
            ["v", "outcome"],
            registry=r,
        )
        for v in [*map(str, VERSIONS), "unknown"]:
            for outcome in ("accepted", "rejected"):
                self.event_versions.labels(v, outcome)
        self.model_seconds = Histogram(
            "p13n_origin_model_seconds",
            "Ranking of one recommendation answer from loaded features (the model hop)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.degraded = Counter(
            "p13n_origin_degraded_answers",
            "Recommendations answered from the in-memory popular list, by reason",
            ["reason"],
            registry=r,
        )
        for reason in DEGRADED_REASONS:
            self.degraded.labels(reason)
        self.invalidations = Counter(
            "p13n_origin_invalidations", "Invalidations accepted, by mode", ["mode"], registry=r
        )
        self.cloudflare = Counter(
            "p13n_origin_cloudflare_purges",
            "Cloudflare purge-by-tag API calls, by outcome",
            ["outcome"],
            registry=r,
        )
        self.sent_bytes = Counter(
            "p13n_origin_sent_bytes",
            "Response body bytes sent, by plane: edge (what edges fetch and forward: the "
            "origin's egress to edges) or admin (operators, console, metrics)",
            ["plane"],
            registry=r,
        )
        for plane in ("edge", "admin"):
            self.sent_bytes.labels(plane)
        self.snapshot_refresh = Counter(
            "p13n_origin_snapshot_refreshes",
            "In-memory snapshot reloads, by outcome",
            ["outcome"],
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


# The method label's values: any other method a client invents is counted as "other", so
# the request histogram's series stay a fixed set (each series is ~20 objects, forever).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_SERIES = 4096  # bound on the middleware's memo of bound series (never reached in practice)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessLogMiddleware:
    """Times every HTTP request into the histogram and writes one JSON access-log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # (template, method, status class) -> (latency series, sent-bytes series), bound once:
        # ``labels()`` validates and takes a lock on every call
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500, 0]  # status, body bytes

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                status[1] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.record(scope, _route_template(scope), status[0], status[1], start)

    def record(self, scope: Scope, template: str, status: int, sent: int, start: float) -> None:
        """Count one answer (``start`` from ``time.perf_counter``) and log it."""
        elapsed = time.perf_counter() - start
        method = scope["method"] if scope["method"] in METHODS else "other"
        key = (template, method, status // 100)
        series = self._series.get(key)
        if series is None:
            plane = "admin" if template.startswith(ADMIN_PREFIXES) else "edge"
            series = (
                self.metrics.request_seconds.labels(template, method, f"{status // 100}xx"),
                self.metrics.sent_bytes.labels(plane),
            )
            if len(self._series) < MAX_SERIES:  # templates are a fixed set; "unmatched" is one
                self._series[key] = series
        series[0].observe(elapsed)
        series[1].inc(sent)
        if ACCESS_LOG.isEnabledFor(logging.INFO):
            ACCESS_LOG.info(_log_line(scope["method"], template, status, elapsed))


def _log_line(method: str, template: str, status: int, elapsed_s: float) -> str:
    doc: dict[str, Any] = {
        "event": "request",
        "method": method,
        "route": template,
        "status": status,
        "ms": round(elapsed_s * 1000, 3),
    }
    return orjson.dumps(doc).decode()


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition."""
    metrics: Metrics = request.app.state.p13n.metrics
    return Response(
        metrics.render(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
    )


def routes() -> list[BaseRoute]:
    """The metrics route."""
    return [Route("/metrics", metrics_endpoint, methods=["GET"])]
