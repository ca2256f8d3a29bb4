"""Origin configuration: one frozen value built once from the environment at the entry point.

Every setting is documented here with its environment variable and default. Units are in the
field names. Only ``Settings.from_env`` reads ``os.environ``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from cache_keys import KeyRing, SigningKey
from segmenter.connection import cluster_url
from segmenter.shoppers import ShopperIds

__all__ = [
    "ROLES",
    "SECRET_SETTINGS",
    "Settings",
    "SettingsError",
    "local_secrets",
    "shopper_ids_from_env",
]

ROLES = frozenset({"merchandiser", "experimenter", "admin", "service"})
_DEV_SEGMENT_KEY = b"dev-segment-key-change-me-0123456789"
_CLOUDFLARE_API_URL = "https://api.cloudflare.com/client/v4"
# The secrets the origin cannot run without. There is no default in the source (a default
# would be public): only a trusted local run (P13N_TRUSTED_LOCAL=1) gets random ones.
SECRET_SETTINGS = ("P13N_SEGMENT_SIGNING", "P13N_CONTEXT_SIGNING", "P13N_CONSOLE_SIGNING")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not an integer") from exc


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "") in ("1", "true", "yes")


def _random_ring() -> KeyRing:
    return KeyRing(SigningKey("local", secrets.token_urlsafe(32).encode("ascii")), None)


def local_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """Random values for the secrets ``env`` lacks, in a trusted local run only (else {}).

    The ``p13n origin`` entry point puts them into its environment before forking workers,
    so every worker signs with the same keys.
    """
    if not _flag(env, "P13N_TRUSTED_LOCAL"):
        return {}
    return {n: f"local:{secrets.token_urlsafe(32)}" for n in SECRET_SETTINGS if not env.get(n)}


def _keyring(env: Mapping[str, str], name: str) -> KeyRing:
    """``NAME`` = "kid:secret[,kid:secret]" (current first, then previous).

    Required: absent, it is a random per-process key in a trusted local run
    (``P13N_TRUSTED_LOCAL=1``) and a ``SettingsError`` otherwise.
    """
    raw = env.get(name)
    if not raw:
        if _flag(env, "P13N_TRUSTED_LOCAL"):
            return _random_ring()
        raise SettingsError(
            f"{name} is not set: it is a secret the origin needs ('kid:secret', make one "
            "with `p13n keygen`); P13N_TRUSTED_LOCAL=1 uses a random key for a local run"
        )
    keys = []
    for part in raw.split(","):
        kid, sep, secret = part.strip().partition(":")
        if not sep or not secret:
            raise SettingsError(f"{name} must be 'kid:secret[,kid:secret]'")
        try:
            keys.append(SigningKey(kid, secret.encode("utf-8")))
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc}") from exc
    if len(keys) > 2:
        raise SettingsError(f"{name} holds at most two keys (current, previous)")
    return KeyRing(keys[0], keys[1] if len(keys) == 2 else None)


def _tokens(env: Mapping[str, str]) -> dict[str, str]:
    """``P13N_ADMIN_TOKENS`` = "role:token[,role:token…]" -> {token: role}."""
    out: dict[str, str] = {}
    raw = env.get("P13N_ADMIN_TOKENS", "")
    for part in filter(None, (p.strip() for p in raw.split(","))):
        role, sep, token = part.partition(":")
        if not sep or role not in ROLES or len(token) < 16:
            raise SettingsError(
                "P13N_ADMIN_TOKENS entries must be role:token with a role in "
                f"{sorted(ROLES)} and a token of at least 16 characters"
            )
        out[token] = role
    return out


def shopper_ids_from_env(env: Mapping[str, str]) -> ShopperIds:
    """``P13N_CUSTOMER_ID_PATTERN`` and ``P13N_CUSTOMER_ID_MAX_LEN`` as the id policy."""
    try:
        return ShopperIds.from_env(env)
    except ValueError as exc:
        raise SettingsError(f"P13N_CUSTOMER_ID_PATTERN / P13N_CUSTOMER_ID_MAX_LEN: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the origin needs to run."""

    # P13N_REDIS_URL (or REDIS_URL): the online store. There is no default port: a run
    # without a URL has no Redis and serves degraded answers. A ``redis+cluster://h1:p1,h2:p2``
    # URL (or ``?cluster=1``), or P13N_REDIS_CLUSTER_NODES (or REDIS_CLUSTER_NODES) =
    # "h1:p1,h2:p2", selects Redis Cluster (``segmenter.connection``).
    redis_url: str | None = None
    # P13N_PREFIX: key namespace in Redis.
    prefix: str = "p13n"
    # P13N_PARTITIONS: number of event-stream partitions.
    partitions: int = 8
    # P13N_SEGMENT_KEY: keyed hash for hseg (segment names never leave the origin). Required
    # unless P13N_TRUSTED_LOCAL=1, where the processor's dev default is used.
    segment_key: bytes = _DEV_SEGMENT_KEY
    # P13N_SEGMENT_SIGNING / P13N_CONTEXT_SIGNING: "kid:secret[,kid:secret]" key rings.
    # Required (no public default): random per process only with P13N_TRUSTED_LOCAL=1.
    segment_keys: KeyRing = field(default_factory=_random_ring)
    context_keys: KeyRing = field(default_factory=_random_ring)
    # P13N_ADMIN_TOKENS: "role:token,…"; roles merchandiser, experimenter, admin, service.
    admin_tokens: dict[str, str] = field(default_factory=dict)
    # P13N_CONSOLE_SIGNING: "kid:secret[,kid:secret]" signing the web console's session
    # cookies and CSRF tokens; rotating it away signs everyone out. Required, as above.
    console_keys: KeyRing = field(default_factory=_random_ring)
    # P13N_CONSOLE_SESSION_S: how long a console sign-in lasts.
    console_session_s: int = 8 * 3600
    # P13N_TRUSTED_LOCAL=1: accept ?user= without a service token (p13n up, tests only).
    trusted_local: bool = False
    # P13N_REDIS_TIMEOUT_MS: budget for one Redis round trip before degrading.
    redis_timeout_ms: int = 150
    # P13N_SEGMENT_TOKEN_TTL_S: lifetime of a segment cookie the origin signs.
    segment_token_ttl_s: int = 86400
    # P13N_EDGE_CONFIG_MAX_AGE_S: how long edges may use a config before revalidating.
    edge_config_max_age_s: int = 10
    # P13N_CLOUDFLARE_ZONE_ID / P13N_CLOUDFLARE_API_TOKEN / P13N_CLOUDFLARE_API_URL:
    # purge-by-tag on Cloudflare; empty means no Cloudflare zone is configured.
    cloudflare_zone_id: str = ""
    cloudflare_api_token: str = ""
    cloudflare_api_url: str = _CLOUDFLARE_API_URL
    # P13N_ARCHIVE_DIR: the segmenter's event archive (erasure rewrites it).
    archive_dir: str = "var/archive"
    # P13N_MAX_BODY_BYTES: request body limit for JSON APIs.
    max_body_bytes: int = 1024 * 1024
    # P13N_MAX_IMPORT_BYTES: body limit of a bulk catalog import (CSV or JSON Lines).
    max_import_bytes: int = 16 * 1024 * 1024
    # P13N_REFRESH_MS: how often each worker reloads its in-memory snapshot (experiments,
    # registry, generations, mask, popular list); far below the edge config's max-age.
    refresh_ms: int = 2000
    # P13N_BREAKER_MS: after a Redis failure, answer degraded without trying Redis for this
    # long, so a dead store costs shoppers nothing (then one request probes again).
    breaker_ms: int = 1000
    # P13N_ITEM_CACHE_TTL_S: lifetime of per-item (co-visitation, catalog) and per-segment
    # (segment list) entries cached in memory. Never per shopper.
    item_cache_ttl_s: int = 60
    # P13N_COVIS_CACHE_TTL_S: co-visitation neighbours change slowly (they are aggregates of
    # many shoppers' sessions), so they are cached longer than catalog entries.
    covis_cache_ttl_s: int = 300
    # P13N_EDGE_LIVE_S: an edge whose last heartbeat is older than this is not counted live.
    edge_live_s: int = 60
    # P13N_BENCH_BASELINE=1: mount /v1/bench/baseline (one HGETALL), for bench/origin.py.
    bench_baseline: bool = False
    # P13N_COLLECTOR_SITE_KEYS: publishable site keys ("k1,k2") the collector accepts in the
    # X-P13N-Site-Key header or the site_key query parameter; empty means none is required.
    collector_site_keys: frozenset[str] = frozenset()
    # P13N_COLLECTOR_RATE_PER_S / P13N_COLLECTOR_BURST: per-shopper token bucket, in events
    # (a browser's site key and shopper cookie; its site key and address without the
    # cookie); over it the collector answers 429 (``origin.collector``, RATE_LIMITS).
    collector_rate_per_s: int = 500
    collector_burst: int = 2000
    # P13N_COLLECTOR_PEER_RATE_PER_S / P13N_COLLECTOR_PEER_BURST: per TCP peer (a browser,
    # or an edge carrying many shoppers' cookies), over the per-shopper buckets above.
    collector_peer_rate_per_s: int = 20_000
    collector_peer_burst: int = 40_000
    # P13N_COLLECTOR_SERVICE_RATE_PER_S / P13N_COLLECTOR_SERVICE_BURST: per service token
    # (the shop's backend sending events with a bearer token), instead of the above.
    collector_service_rate_per_s: int = 50_000
    collector_service_burst: int = 100_000
    # P13N_MAX_CLOCK_SKEW_MS: events stamped further in the future are rejected.
    max_clock_skew_ms: int = 5 * 60_000
    # P13N_CUSTOMER_ID_PATTERN / P13N_CUSTOMER_ID_MAX_LEN: the shop's own customer ids
    # (``segmenter.shoppers``): a regular expression every id must match whole, and a length
    # limit (at most 64). Ids must also fit [A-Za-z0-9_.:-]; the default admits "cust_48213",
    # "12345" and hex e-mail hashes, never a raw e-mail address.
    shopper_ids: ShopperIds = field(default_factory=ShopperIds)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); raises ``SettingsError``."""
        e = os.environ if env is None else env
        seg_key = e.get("P13N_SEGMENT_KEY")
        if not seg_key and not _flag(e, "P13N_TRUSTED_LOCAL"):
            # The source's dev key is public; outside a local run the hash key must be set
            # (the same value as the processor's).
            raise SettingsError(
                "P13N_SEGMENT_KEY is not set: the segment hash key (the processor's value, "
                "at least 16 characters; make one with `p13n keygen`)"
            )
        return cls(
            redis_url=cluster_url(
                e.get("P13N_REDIS_URL") or e.get("REDIS_URL") or "",
                e.get("P13N_REDIS_CLUSTER_NODES") or e.get("REDIS_CLUSTER_NODES") or "",
            )
            or None,
            prefix=e.get("P13N_PREFIX", "p13n"),
            partitions=_int(e, "P13N_PARTITIONS", 8),
            segment_key=seg_key.encode() if seg_key else _DEV_SEGMENT_KEY,
            segment_keys=_keyring(e, "P13N_SEGMENT_SIGNING"),
            context_keys=_keyring(e, "P13N_CONTEXT_SIGNING"),
            admin_tokens=_tokens(e),
            console_keys=_keyring(e, "P13N_CONSOLE_SIGNING"),
            console_session_s=_int(e, "P13N_CONSOLE_SESSION_S", 8 * 3600),
            trusted_local=_flag(e, "P13N_TRUSTED_LOCAL"),
            redis_timeout_ms=_int(e, "P13N_REDIS_TIMEOUT_MS", 150),
            segment_token_ttl_s=_int(e, "P13N_SEGMENT_TOKEN_TTL_S", 86400),
            edge_config_max_age_s=_int(e, "P13N_EDGE_CONFIG_MAX_AGE_S", 10),
            cloudflare_zone_id=e.get("P13N_CLOUDFLARE_ZONE_ID", ""),
            cloudflare_api_token=e.get("P13N_CLOUDFLARE_API_TOKEN", ""),
            cloudflare_api_url=e.get("P13N_CLOUDFLARE_API_URL", _CLOUDFLARE_API_URL),
            archive_dir=e.get("P13N_ARCHIVE_DIR", "var/archive"),
            max_body_bytes=_int(e, "P13N_MAX_BODY_BYTES", 1024 * 1024),
            max_import_bytes=_int(e, "P13N_MAX_IMPORT_BYTES", 16 * 1024 * 1024),
            refresh_ms=_int(e, "P13N_REFRESH_MS", 2000),
            breaker_ms=_int(e, "P13N_BREAKER_MS", 1000),
            item_cache_ttl_s=_int(e, "P13N_ITEM_CACHE_TTL_S", 60),
            covis_cache_ttl_s=_int(e, "P13N_COVIS_CACHE_TTL_S", 300),
            edge_live_s=_int(e, "P13N_EDGE_LIVE_S", 60),
            bench_baseline=_flag(e, "P13N_BENCH_BASELINE"),
            collector_site_keys=frozenset(
                k.strip() for k in e.get("P13N_COLLECTOR_SITE_KEYS", "").split(",") if k.strip()
            ),
            collector_rate_per_s=_int(e, "P13N_COLLECTOR_RATE_PER_S", 500),
            collector_burst=_int(e, "P13N_COLLECTOR_BURST", 2000),
            collector_peer_rate_per_s=_int(e, "P13N_COLLECTOR_PEER_RATE_PER_S", 20_000),
            collector_peer_burst=_int(e, "P13N_COLLECTOR_PEER_BURST", 40_000),
            collector_service_rate_per_s=_int(e, "P13N_COLLECTOR_SERVICE_RATE_PER_S", 50_000),
            collector_service_burst=_int(e, "P13N_COLLECTOR_SERVICE_BURST", 100_000),
            max_clock_skew_ms=_int(e, "P13N_MAX_CLOCK_SKEW_MS", 5 * 60_000),
            shopper_ids=shopper_ids_from_env(e),
        )
