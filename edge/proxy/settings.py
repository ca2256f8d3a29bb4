"""Settings of one self-hosted edge process: a frozen value built once at the entry point.

The decision core's own settings (``edge.settings.EdgeSettings``: origin URL, segment and
context keys, locales, default list, budgets) come from the same variables the Worker uses;
this adds what only a long-running proxy has. ``SEGMENT_KEYS`` may be absent: the edge then
runs as a plain shared HTTP cache with nothing personal enabled. Each field's metadata names
its variable (docs/CONFIGURATION.md is written from it by ``tools/config_doc.py``).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.errors import SettingsError
from edge.proxy.store import DEFAULT_MAX_BYTES
from edge.settings import EdgeSettings, env_doc, settings_from_env

__all__ = ["ProxySettings"]


def _edge_id(raw: str) -> str:
    """A slug edge id (``Edge_1.local:8081`` -> ``edge-1-local-8081``), as heartbeats need."""
    slug = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:40].strip("-")
    if not slug:
        raise SettingsError("P13N_EDGE_ID", "needs letters or digits")
    return slug


def _prefixes(raw: str) -> tuple[str, ...]:
    """``" /shop/ , /v1/events"`` -> ``("/shop/", "/v1/events")``; each must be a path."""
    out = tuple(p.strip() for p in raw.split(",") if p.strip())
    for p in out:
        if not p.startswith("/"):
            raise SettingsError("P13N_EDGE_FORWARD_PREFIXES", f"{p!r} is not a path prefix")
    return out


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Everything one edge process needs (metadata: each field's variable)."""

    core: EdgeSettings | None  # None: plain HTTP cache, no personalization
    origin_url: str  # ORIGIN_URL, as in EdgeSettings
    redis_url: str | None = field(
        default=None,
        metadata=env_doc(
            "P13N_EDGE_REDIS_URL",
            "where purges are pushed (pub/sub); unset: generations are only pulled with the edge "
            "config. On Redis Cluster `redis+cluster://h1:p1,h2:p2` (or `?cluster=1`): the "
            "subscriber listens on one node and moves on when it fails",
            default="none (pull only)",
            secret=True,  # a URL may carry a password
        ),
    )
    redis_prefix: str = field(
        default="p13n",
        metadata=env_doc(
            "P13N_PREFIX", "key namespace in Redis (the origin's value): names the purge channel"
        ),
    )
    edge_id: str = field(
        default="edge",
        metadata=env_doc(
            "P13N_EDGE_ID",
            "names this edge in heartbeats (a slug of letters, digits, -)",
            default="edge-<hostname>-<port>",
        ),
    )
    cache_max_bytes: int = field(
        default=DEFAULT_MAX_BYTES,
        metadata=env_doc("P13N_EDGE_CACHE_MAX_BYTES", "the byte bound of the response store"),
    )
    heartbeat_s: float = field(
        default=3.0,
        metadata=env_doc(
            "P13N_EDGE_HEARTBEAT_S", "how often the edge reports to the origin (0 disables)"
        ),
    )
    collapse_wait_ms: int = field(
        default=2000,
        metadata=env_doc(
            "P13N_EDGE_WAIT_MS", "how long a collapsed request waits for the leader's origin fetch"
        ),
    )
    breaker_failures: int = field(
        default=5,
        metadata=env_doc(
            "P13N_EDGE_BREAKER_FAILURES", "origin failures in a row that open the circuit breaker"
        ),
    )
    breaker_reset_s: float = field(
        default=5.0,
        metadata=env_doc(
            "P13N_EDGE_BREAKER_RESET_S", "how long the open breaker waits before one probe"
        ),
    )
    proxy_timeout_ms: int = field(
        default=5000,
        metadata=env_doc(
            "P13N_EDGE_PROXY_TIMEOUT_MS", "timeout of proxied (non-rail) origin requests"
        ),
    )
    service_token: str = field(
        default="",
        metadata=env_doc(
            "P13N_EDGE_SERVICE_TOKEN",
            "bearer token (service role, one of the origin's P13N_ADMIN_TOKENS) for heartbeats",
            secret=True,
            default="empty (heartbeats carry no token)",
        ),
    )
    bench_hello: bool = field(
        default=False,
        metadata=env_doc(
            "P13N_EDGE_BENCH_HELLO",
            "also serve GET /__bench/hello, the baseline of bench/edge_proxy.py; off in production",
            type="flag (1, true, yes)",
        ),
    )
    forward_admin: bool = field(
        default=False,
        metadata=env_doc(
            "P13N_EDGE_FORWARD_ADMIN",
            "also forward the origin's admin plane (admin API, console, /metrics, /openapi.json, "
            "heartbeats, edge feeds, health) on the shopper port; off: those paths answer 404",
            type="flag (1, true, yes)",
        ),
    )
    forward_prefixes: tuple[str, ...] = field(
        default=(),
        metadata=env_doc(
            "P13N_EDGE_FORWARD_PREFIXES",
            "comma-separated path prefixes (`/shop/,/v1/events`): when set, only these (and the "
            "rails) are forwarded, everything else answers 404",
            type="list of paths",
            default="empty (every path but the admin plane)",
        ),
    )
    max_request_line_bytes: int = field(
        default=8192,
        metadata=env_doc("P13N_EDGE_MAX_REQUEST_LINE_BYTES", "longest request target (414 beyond)"),
    )
    max_header_bytes: int = field(
        default=32768,
        metadata=env_doc(
            "P13N_EDGE_MAX_HEADER_BYTES", "total bytes of the header field lines (431 beyond)"
        ),
    )
    max_headers: int = field(
        default=100,
        metadata=env_doc("P13N_EDGE_MAX_HEADERS", "most header field lines (431 beyond)"),
    )
    head_timeout_s: float = field(
        default=10.0,
        metadata=env_doc(
            "P13N_EDGE_HEAD_TIMEOUT_S",
            "time for a whole request head, from its first byte or from the connection opening "
            "(408 and closed beyond)",
        ),
    )
    body_timeout_s: float = field(
        default=30.0,
        metadata=env_doc(
            "P13N_EDGE_BODY_TIMEOUT_S",
            "longest wait for the next part of a request body, from the end of the head and "
            "then from each part (408 and closed beyond; nothing is forwarded)",
        ),
    )
    idle_timeout_s: float = field(
        default=5.0,
        metadata=env_doc(
            "P13N_EDGE_IDLE_TIMEOUT_S", "an idle keep-alive connection is closed after this"
        ),
    )

    def origin_auth_headers(self) -> dict[str, str]:
        """Authorization for the edge's own calls to the origin (heartbeats)."""
        return {"authorization": f"Bearer {self.service_token}"} if self.service_token else {}

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        origin_url: str | None = None,
        redis_url: str | None = None,
        port: int = 0,
    ) -> ProxySettings:
        """Build from the environment; explicit arguments (the CLI's flags) win."""
        e = dict(os.environ if env is None else env)
        if origin_url:
            e["ORIGIN_URL"] = origin_url
        core = settings_from_env(e) if e.get("SEGMENT_KEYS") else None
        origin = core.origin_url if core else (e.get("ORIGIN_URL") or "").rstrip("/")
        if not origin:
            raise SettingsError("ORIGIN_URL", "is required (or --origin)")

        def num(name: str, default: float) -> float:
            raw = e.get(name)
            try:
                return float(raw) if raw else default
            except ValueError as exc:
                raise SettingsError(name, "must be a number") from exc

        return cls(
            core=core,
            origin_url=origin,
            redis_url=redis_url or e.get("P13N_EDGE_REDIS_URL") or None,
            redis_prefix=e.get("P13N_PREFIX", "p13n"),
            edge_id=_edge_id(e.get("P13N_EDGE_ID") or f"edge-{socket.gethostname()}-{port}"),
            cache_max_bytes=int(num("P13N_EDGE_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES)),
            heartbeat_s=num("P13N_EDGE_HEARTBEAT_S", 3.0),
            collapse_wait_ms=int(num("P13N_EDGE_WAIT_MS", 2000)),
            breaker_failures=int(num("P13N_EDGE_BREAKER_FAILURES", 5)),
            breaker_reset_s=num("P13N_EDGE_BREAKER_RESET_S", 5.0),
            proxy_timeout_ms=int(num("P13N_EDGE_PROXY_TIMEOUT_MS", 5000)),
            service_token=e.get("P13N_EDGE_SERVICE_TOKEN", ""),
            bench_hello=e.get("P13N_EDGE_BENCH_HELLO", "") in ("1", "true", "yes"),
            forward_admin=e.get("P13N_EDGE_FORWARD_ADMIN", "") in ("1", "true", "yes"),
            forward_prefixes=_prefixes(e.get("P13N_EDGE_FORWARD_PREFIXES", "")),
            max_request_line_bytes=int(num("P13N_EDGE_MAX_REQUEST_LINE_BYTES", 8192)),
            max_header_bytes=int(num("P13N_EDGE_MAX_HEADER_BYTES", 32768)),
            max_headers=int(num("P13N_EDGE_MAX_HEADERS", 100)),
            head_timeout_s=num("P13N_EDGE_HEAD_TIMEOUT_S", 10.0),
            body_timeout_s=num("P13N_EDGE_BODY_TIMEOUT_S", 30.0),
            idle_timeout_s=num("P13N_EDGE_IDLE_TIMEOUT_S", 5.0),
        )
