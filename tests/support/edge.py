"""Plain-data builders for the edge core's unit tests (no I/O, fixed clock), and the keys the
Worker tests share with the stand-in origin."""

from __future__ import annotations

from typing import Any

from cache_keys.segments import Hseg, hash_segment
from cache_keys.tokens import KeyRing, SigningKey, sign_segment
from cache_keys.wire import (
    CONTEXT_COOKIE,
    SEGMENT_COOKIE,
    SHOPPER_COOKIE,
    ContextCookie,
    EdgeConfig,
    ListItem,
    encode_context,
    parse_edge_config,
)
from edge.request import RequestParts
from edge.settings import EdgeSettings, settings_from_env

SEGMENT_KEYS = "k1:standin-secret-0123456789"  # the Worker's SEGMENT_KEYS, kid:secret
KEYRING = KeyRing(SigningKey("k1", b"standin-secret-0123456789"))
NOW_MS = 1_764_000_000_000

HSEG: Hseg = hash_segment("returning|grocery|mid", b"unit-test-segment-key")
SHOPPER = "q1w2e3r4t5y6u7i8o9p0aa"
NOW_S = NOW_MS // 1000


def make_settings(**overrides: str) -> EdgeSettings:
    """Edge settings from a Worker-style environment: ``overrides`` on a minimal one."""
    env = {"ORIGIN_URL": "http://127.0.0.1:9", "SEGMENT_KEYS": SEGMENT_KEYS, **overrides}
    return settings_from_env(env)


def config(**doc: Any) -> EdgeConfig:
    """An edge config from the JSON-shaped overrides (validated like the real one)."""
    return parse_edge_config({"v": 1, "etag": '"t"', "generated_at_ms": 0, **doc})


def experiment(key: str = "rail-algo", **overrides: Any) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "key": key,
        "seed": key,
        "status": "running",
        "variations": [{"name": "control"}, {"name": "boost"}],
        "weights": [0.0, 1.0],
    }
    exp.update(overrides)
    return exp


def token(hseg: Hseg = HSEG, expires_s: int = NOW_S + 86400) -> str:
    return sign_segment(hseg, expires_s, KEYRING)


def parts(
    route: str = "home",
    *,
    shopper: str | None = SHOPPER,
    seg: str | None = None,
    ctx: ContextCookie | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> RequestParts:
    cookies = {}
    if shopper:
        cookies[SHOPPER_COOKIE.name] = shopper
    if seg:
        cookies[SEGMENT_COOKIE.name] = seg
    if ctx:
        cookies[CONTEXT_COOKIE.name] = encode_context(ctx, KEYRING)
    return RequestParts(route, cookies, headers or {}, query or {})


def items(n: int = 20, categories: tuple[str, ...] = ("a", "b", "c")) -> list[ListItem]:
    return [
        ListItem(f"I-{i:03d}", 1.0 - i / 100, categories[i % len(categories)], float(i + 1))
        for i in range(n)
    ]
