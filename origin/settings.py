"""Origin configuration: one frozen value built once from the environment at the entry point.

Each field's metadata names its environment variable, what it does and whether it is a secret;
``tools/config_doc.py`` writes docs/CONFIGURATION.md from it. Units are in the field names.
Only ``Settings.from_env`` reads ``os.environ``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cache_keys import KeyRing, SigningKey
from cache_keys.costs import DEFAULT_PRICE_PER_GB, PRICE_ENV, parse_price
from segmenter.connection import cluster_url
from segmenter.shoppers import (
    DEFAULT_CUSTOMER_ID_MAX_LEN,
    DEFAULT_CUSTOMER_ID_PATTERN,
    ShopperIds,
)

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
# How docs/CONFIGURATION.md shows a key ring and a flag.
_RING = {"secret": True, "type": "kid:secret[,kid:secret]", "default": "required (random with "
         "P13N_TRUSTED_LOCAL=1)"}  # fmt: skip
_FLAG = "flag (1, true, yes)"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _env(name: str, doc: str, **shown: Any) -> dict[str, Any]:
    """A field's metadata: its variable and what it does (plus how the document shows it)."""
    return {"env": name, "doc": doc, **shown}


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not an integer") from exc


def _share(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name) or "0"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:  # also NaN
        raise SettingsError(f"{name}={raw!r} is not a share from 0 to 1")
    return value


def _price(env: Mapping[str, str]) -> float:
    try:
        return parse_price(env.get(PRICE_ENV))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


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


def _currency(env: Mapping[str, str]) -> str:
    code = env.get("P13N_CURRENCY", "") or "USD"
    if not (len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()):
        raise SettingsError(f"P13N_CURRENCY={code!r} is not a three-letter ISO 4217 code")
    return code


def shopper_ids_from_env(env: Mapping[str, str]) -> ShopperIds:
    """``P13N_CUSTOMER_ID_PATTERN`` and ``P13N_CUSTOMER_ID_MAX_LEN`` as the id policy."""
    try:
        return ShopperIds.from_env(env)
    except ValueError as exc:
        raise SettingsError(f"P13N_CUSTOMER_ID_PATTERN / P13N_CUSTOMER_ID_MAX_LEN: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the origin needs to run; each field's metadata documents its variable."""

    redis_url: str | None = field(
        default=None,
        metadata=_env(
            "P13N_REDIS_URL",
            "the online store; without it there is no Redis and answers are degraded (there "
            "is no default port). A `redis+cluster://h1:p1,h2:p2` URL (or `?cluster=1`), or "
            "cluster nodes as h1:p1,h2:p2, select Redis Cluster",
            secret=True,  # a URL may carry a password
            also=("REDIS_URL", "P13N_REDIS_CLUSTER_NODES", "REDIS_CLUSTER_NODES"),
        ),
    )
    prefix: str = field(default="p13n", metadata=_env("P13N_PREFIX", "key namespace in Redis"))
    partitions: int = field(
        default=8, metadata=_env("P13N_PARTITIONS", "number of event-stream partitions")
    )
    segment_key: bytes = field(
        default=_DEV_SEGMENT_KEY,
        metadata=_env(
            "P13N_SEGMENT_KEY",
            "keyed hash for hseg (segment names never leave the origin): the processor's value, "
            "at least 16 characters",
            secret=True,
            type="str",
            default="required (a public dev key with P13N_TRUSTED_LOCAL=1)",
        ),
    )
    segment_keys: KeyRing = field(
        default_factory=_random_ring,
        metadata=_env("P13N_SEGMENT_SIGNING", "signs the segment cookie the edges verify", **_RING),
    )
    context_keys: KeyRing = field(
        default_factory=_random_ring,
        metadata=_env(
            "P13N_CONTEXT_SIGNING", "signs the context cookie the edges rerank with", **_RING
        ),
    )
    admin_tokens: dict[str, str] = field(
        default_factory=dict,
        metadata=_env(
            "P13N_ADMIN_TOKENS",
            "admin API bearer tokens; roles merchandiser, experimenter, admin, service; tokens of "
            "at least 16 characters",
            secret=True,
            type="role:token[,role:token]",
            default="none (no admin access)",
        ),
    )
    console_keys: KeyRing = field(
        default_factory=_random_ring,
        metadata=_env(
            "P13N_CONSOLE_SIGNING",
            "signs the console's session cookies and CSRF tokens (rotating it signs everyone out)",
            **_RING,
        ),
    )
    console_session_s: int = field(
        default=8 * 3600,
        metadata=_env("P13N_CONSOLE_SESSION_S", "how long a console sign-in lasts"),
    )
    currency: str = field(
        default="USD",
        metadata=_env(
            "P13N_CURRENCY",
            "ISO 4217 code of the shop's prices: how experiment results show revenue "
            "(prices are in its major unit, as the events carry them)",
        ),
    )
    trusted_local: bool = field(
        default=False,
        metadata=_env(
            "P13N_TRUSTED_LOCAL",
            "a trusted local run (`p13n up`, tests): ?user= without a service token, random "
            "signing keys when none are set. Never in production",
            type=_FLAG,
        ),
    )
    redis_timeout_ms: int = field(
        default=150,
        metadata=_env("P13N_REDIS_TIMEOUT_MS", "budget for one Redis round trip before degrading"),
    )
    segment_token_ttl_s: int = field(
        default=86400,
        metadata=_env("P13N_SEGMENT_TOKEN_TTL_S", "lifetime of a segment cookie the origin signs"),
    )
    edge_config_max_age_s: int = field(
        default=10,
        metadata=_env(
            "P13N_EDGE_CONFIG_MAX_AGE_S", "how long edges may use a config before revalidating"
        ),
    )
    cloudflare_zone_id: str = field(
        default="",
        metadata=_env(
            "P13N_CLOUDFLARE_ZONE_ID", "Cloudflare zone purged by tag; empty: no Cloudflare zone"
        ),
    )
    cloudflare_api_token: str = field(
        default="",
        metadata=_env(
            "P13N_CLOUDFLARE_API_TOKEN", "API token allowed to purge the zone's cache", secret=True
        ),
    )
    cloudflare_api_url: str = field(
        default=_CLOUDFLARE_API_URL,
        metadata=_env(
            "P13N_CLOUDFLARE_API_URL", "Cloudflare's API base URL (tests point it elsewhere)"
        ),
    )
    cloudflare_account_id: str = field(
        default="",
        metadata=_env(
            "P13N_CLOUDFLARE_ACCOUNT_ID",
            "account of the Workers KV namespace below (with the API token, which then also"
            " needs Workers KV Storage: Edit)",
        ),
    )
    cloudflare_kv_namespace_id: str = field(
        default="",
        metadata=_env(
            "P13N_CLOUDFLARE_KV_NAMESPACE_ID",
            "Workers KV namespace the origin keeps the edge config in (key edge-config, the"
            " Worker's EDGE_CONFIG binding); empty: off",
        ),
    )
    kv_publish_check_ms: int = field(
        default=1000,
        metadata=_env(
            "P13N_KV_PUBLISH_CHECK_MS",
            "how often the edge config is compared with the one in KV (a change, say a hard"
            " purge, is written at the next check)",
        ),
    )
    kv_publish_every_s: int = field(
        default=60,
        metadata=_env(
            "P13N_KV_PUBLISH_EVERY_S",
            "an unchanged config is rewritten to KV this often, so its generated_at_ms stays"
            " recent (the Worker never counts an older document as fresh)",
        ),
    )
    archive_dir: str = field(
        default="var/archive",
        metadata=_env("P13N_ARCHIVE_DIR", "the processor's event archive (erasure rewrites it)"),
    )
    max_body_bytes: int = field(
        default=1024 * 1024,
        metadata=_env("P13N_MAX_BODY_BYTES", "request body limit for JSON APIs"),
    )
    max_import_bytes: int = field(
        default=16 * 1024 * 1024,
        metadata=_env(
            "P13N_MAX_IMPORT_BYTES", "body limit of a bulk catalog import (CSV or JSON Lines)"
        ),
    )
    schedule_tick_ms: int = field(
        default=1000,
        metadata=_env(
            "P13N_SCHEDULE_TICK_MS",
            "how often each origin process looks for scheduled changes that are due "
            "(invalidations and merchandising rules with a `when`); a change is applied at most "
            "this late",
        ),
    )
    guardrail_latency_ms: int = field(
        default=0,
        metadata=_env(
            "P13N_GUARDRAIL_LATENCY_MS",
            "experiment guardrail: an origin answer slower than this counts as slow for its "
            "arms (0: the route's origin budget, `origin_budget_ms`)",
        ),
    )
    guardrail_check_s: int = field(
        default=60,
        metadata=_env(
            "P13N_GUARDRAIL_CHECK_S",
            "how often one origin process checks the guardrails of running experiments with "
            "auto-stop (the other processes skip that round)",
        ),
    )
    refresh_ms: int = field(
        default=2000,
        metadata=_env(
            "P13N_REFRESH_MS",
            "how often each worker reloads its in-memory snapshot (experiments, registry, "
            "generations, mask, popular list); far below the edge config's max-age",
        ),
    )
    breaker_ms: int = field(
        default=1000,
        metadata=_env(
            "P13N_BREAKER_MS",
            "after a Redis failure, answer degraded without trying Redis for this long, so a dead "
            "store costs shoppers nothing (then one request probes again)",
        ),
    )
    item_cache_ttl_s: int = field(
        default=60,
        metadata=_env(
            "P13N_ITEM_CACHE_TTL_S",
            "lifetime of per-item (catalog) and per-segment (segment list) entries cached in "
            "memory; never per shopper",
        ),
    )
    covis_cache_ttl_s: int = field(
        default=300,
        metadata=_env(
            "P13N_COVIS_CACHE_TTL_S",
            "lifetime of cached co-visitation neighbours (aggregates of many shoppers' sessions, "
            "they change slowly)",
        ),
    )
    edge_live_s: int = field(
        default=60,
        metadata=_env(
            "P13N_EDGE_LIVE_S", "an edge whose last heartbeat is older than this is not live"
        ),
    )
    egress_price_per_gb: float = field(
        default=DEFAULT_PRICE_PER_GB,
        metadata=_env(
            PRICE_ENV,
            "price of one GB of egress, for the console's monthly cost estimate (pipeline page; "
            "in your currency; the same variable and meaning as `p13n status`'s)",
        ),
    )
    bench_baseline: bool = field(
        default=False,
        metadata=_env(
            "P13N_BENCH_BASELINE",
            "mount /v1/bench/baseline (one HGETALL) for bench/origin.py",
            type=_FLAG,
        ),
    )
    collector_site_keys: frozenset[str] = field(
        default=frozenset(),
        metadata=_env(
            "P13N_COLLECTOR_SITE_KEYS",
            "publishable site keys the collector accepts (X-P13N-Site-Key header or site_key "
            "query parameter); empty: none is required",
            type="k1[,k2]",
        ),
    )
    collector_rate_per_s: int = field(
        default=500,
        metadata=_env(
            "P13N_COLLECTOR_RATE_PER_S",
            "per-shopper token bucket rate in events/s (a browser's site key and shopper "
            "cookie; its site key and address without the cookie); over it the collector "
            "answers 429",
        ),
    )
    collector_burst: int = field(
        default=2000,
        metadata=_env("P13N_COLLECTOR_BURST", "per-shopper token bucket size, in events"),
    )
    collector_peer_rate_per_s: int = field(
        default=20_000,
        metadata=_env(
            "P13N_COLLECTOR_PEER_RATE_PER_S",
            "per TCP peer token bucket rate in events/s (a browser, or an edge carrying many "
            "shoppers' cookies), over the per-shopper buckets",
        ),
    )
    collector_peer_burst: int = field(
        default=40_000,
        metadata=_env("P13N_COLLECTOR_PEER_BURST", "per TCP peer token bucket size, in events"),
    )
    collector_service_rate_per_s: int = field(
        default=50_000,
        metadata=_env(
            "P13N_COLLECTOR_SERVICE_RATE_PER_S",
            "per service token bucket rate in events/s (the shop's backend sending events with "
            "a bearer token), instead of the per-shopper and per-peer buckets",
        ),
    )
    collector_service_burst: int = field(
        default=100_000,
        metadata=_env("P13N_COLLECTOR_SERVICE_BURST", "per service token bucket size, in events"),
    )
    holdout_share: float = field(
        default=0.0,
        metadata=_env(
            "P13N_HOLDOUT_SHARE",
            "share of shoppers in the global holdout (0 to 1), who always get the non-personal "
            "rail, until an experimenter sets it through PUT /v1/admin/holdout",
            type="float",
        ),
    )
    repeat_share: float = field(
        default=0.0,
        metadata=_env(
            "P13N_REPEAT_SHARE",
            "the shop's share of purchases that repeat an item the same shopper bought before "
            '(0 to 1), mixing the rails\' "due again" and "goes with" signals; 0: as the '
            "segment list build measures it from the shop's own data",
            type="float",
        ),
    )
    max_clock_skew_ms: int = field(
        default=5 * 60_000,
        metadata=_env(
            "P13N_MAX_CLOCK_SKEW_MS", "events stamped further in the future are rejected"
        ),
    )
    shopper_ids: ShopperIds = field(
        default_factory=ShopperIds,
        metadata=_env(
            "P13N_CUSTOMER_ID_PATTERN",
            "the shop's own customer ids (`segmenter.shoppers`): a regular expression every id "
            "must match whole, and P13N_CUSTOMER_ID_MAX_LEN, a length limit (at most 64). Ids "
            "must also fit [A-Za-z0-9_.:-]; the default admits cust_48213, 12345 and hex e-mail "
            "hashes, never a raw e-mail address",
            also=("P13N_CUSTOMER_ID_MAX_LEN",),
            type="regex; int",
            default=f"`{DEFAULT_CUSTOMER_ID_PATTERN}`; {DEFAULT_CUSTOMER_ID_MAX_LEN}",
        ),
    )

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
            currency=_currency(e),
            trusted_local=_flag(e, "P13N_TRUSTED_LOCAL"),
            redis_timeout_ms=_int(e, "P13N_REDIS_TIMEOUT_MS", 150),
            segment_token_ttl_s=_int(e, "P13N_SEGMENT_TOKEN_TTL_S", 86400),
            edge_config_max_age_s=_int(e, "P13N_EDGE_CONFIG_MAX_AGE_S", 10),
            cloudflare_zone_id=e.get("P13N_CLOUDFLARE_ZONE_ID", ""),
            cloudflare_api_token=e.get("P13N_CLOUDFLARE_API_TOKEN", ""),
            cloudflare_api_url=e.get("P13N_CLOUDFLARE_API_URL", _CLOUDFLARE_API_URL),
            cloudflare_account_id=e.get("P13N_CLOUDFLARE_ACCOUNT_ID", ""),
            cloudflare_kv_namespace_id=e.get("P13N_CLOUDFLARE_KV_NAMESPACE_ID", ""),
            kv_publish_check_ms=_int(e, "P13N_KV_PUBLISH_CHECK_MS", 1000),
            kv_publish_every_s=_int(e, "P13N_KV_PUBLISH_EVERY_S", 60),
            archive_dir=e.get("P13N_ARCHIVE_DIR", "var/archive"),
            max_body_bytes=_int(e, "P13N_MAX_BODY_BYTES", 1024 * 1024),
            max_import_bytes=_int(e, "P13N_MAX_IMPORT_BYTES", 16 * 1024 * 1024),
            refresh_ms=_int(e, "P13N_REFRESH_MS", 2000),
            schedule_tick_ms=_int(e, "P13N_SCHEDULE_TICK_MS", 1000),
            guardrail_latency_ms=_int(e, "P13N_GUARDRAIL_LATENCY_MS", 0),
            guardrail_check_s=_int(e, "P13N_GUARDRAIL_CHECK_S", 60),
            breaker_ms=_int(e, "P13N_BREAKER_MS", 1000),
            item_cache_ttl_s=_int(e, "P13N_ITEM_CACHE_TTL_S", 60),
            covis_cache_ttl_s=_int(e, "P13N_COVIS_CACHE_TTL_S", 300),
            edge_live_s=_int(e, "P13N_EDGE_LIVE_S", 60),
            egress_price_per_gb=_price(e),
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
            holdout_share=_share(e, "P13N_HOLDOUT_SHARE"),
            repeat_share=_share(e, "P13N_REPEAT_SHARE"),
            shopper_ids=shopper_ids_from_env(e),
        )
