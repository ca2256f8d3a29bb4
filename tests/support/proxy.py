"""Builders for the self-hosted edge's tests: its settings in front of a real origin, and
stored responses for the byte store."""

from __future__ import annotations

from typing import Any

from cache_keys.tokens import KeyRing
from edge.proxy.cachecontrol import ResponseDirectives
from edge.proxy.freshness import Timing
from edge.proxy.settings import ProxySettings
from edge.proxy.store import StoredResponse, selecting_values, vary_names
from edge.settings import EdgeSettings
from tests.support.data import RING, SERVICE
from tests.support.servers import OriginProcess

__all__ = ["core_settings", "proxy_settings", "resp"]


def core_settings(origin_url: str, ring: KeyRing = RING, **kw: int) -> EdgeSettings:
    """The decision core's settings of an edge in front of ``origin_url`` (its collector)."""
    args = {"origin_timeout_ms": 500, "segment_refresh_ms": 0, **kw}
    return EdgeSettings(
        origin_url=origin_url,
        segment_keys=ring,
        context_keys=ring,
        collector_url=origin_url,
        **args,
    )


def proxy_settings(origin: OriginProcess, **kw: Any) -> ProxySettings:
    """Settings of an in-process edge in front of ``origin``; ``kw`` overrides any field."""
    args = {
        "core": core_settings(origin.url),
        "origin_url": origin.url,
        "redis_url": origin.redis.url,
        "edge_id": "edge-test",
        "service_token": SERVICE,  # heartbeats need the service role, as in production
        "heartbeat_s": 0.2,
        "breaker_failures": 3,
        "breaker_reset_s": 1.0,
        "collapse_wait_ms": 3000,
        "proxy_timeout_ms": 1000,
    }
    args.update(kw)
    return ProxySettings(**args)


def resp(
    body: bytes = b"x",
    vary: str | None = None,
    req: dict | None = None,
    tags: frozenset[str] = frozenset(),
) -> StoredResponse:
    """A stored 200 for the store's tests: ``body``, varying on ``vary`` as ``req`` asks."""
    return StoredResponse(
        status=200,
        headers=[("content-type", "text/plain")],
        body=body,
        timing=Timing(0, 0, None, 0),
        directives=ResponseDirectives({}, False),
        lifetime=60,
        vary=selecting_values(vary_names(vary), req or {}),
        tags=tags,
    )
