"""The edge's settings: one frozen value built once from the Worker ``env`` or ``os.environ``.

The Worker's ``[vars]`` and secrets; the self-hosted proxy reads the same names. Each field's
metadata names its variable and what it does; ``tools/config_doc.py`` writes the table of
docs/CONFIGURATION.md from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cache_keys.errors import CacheKeysError
from cache_keys.tokens import KeyRing, SigningKey
from cache_keys.wire import ListItem, parse_list_item
from edge.errors import SettingsError

__all__ = ["EdgeSettings", "env_doc", "parse_keyring", "settings_from_env"]

_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_LOCALE_RE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8}){0,2}")
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_RING = "kid:secret[,kid:secret]"


def env_doc(name: str, doc: str, **shown: Any) -> dict[str, Any]:
    """A field's metadata: its variable and what it does (plus how the document shows it)."""
    return {"env": name, "doc": doc, **shown}


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """Everything the edge needs besides the edge config (metadata: each field's variable)."""

    origin_url: str = field(
        metadata=env_doc(
            "ORIGIN_URL", "origin base URL without a path, e.g. https://origin.shop.example"
        )
    )
    segment_keys: KeyRing = field(
        metadata=env_doc(
            "SEGMENT_KEYS",
            "verifies the segment cookie: the origin's P13N_SEGMENT_SIGNING keys",
            secret=True,
            type=_RING,
        )
    )
    context_keys: KeyRing = field(
        metadata=env_doc(
            "CONTEXT_KEYS",
            "verifies the context cookie: the origin's P13N_CONTEXT_SIGNING keys",
            secret=True,
            type=_RING,
            default="`SEGMENT_KEYS`",
        )
    )
    collector_url: str = field(
        metadata=env_doc(
            "COLLECTOR_URL", "where exposure events go (`POST /v1/events`)", default="`ORIGIN_URL`"
        )
    )
    locales: tuple[str, ...] = field(
        default=("en-us",),
        metadata=env_doc(
            "LOCALES", "locales keyed on, first is the default", type="l1[,l2]", default="`en-us`"
        ),
    )
    default_items: tuple[ListItem, ...] = field(
        default=(),
        metadata=env_doc(
            "DEFAULT_ITEMS",
            "the built-in default rail: a JSON list of list items",
            type="JSON array",
            default="`[]`",
        ),
    )
    origin_timeout_ms: int = field(
        default=800,
        metadata=env_doc(
            "ORIGIN_TIMEOUT_MS", "budget for a list or config fetch on the request path"
        ),
    )
    segment_refresh_ms: int = field(
        default=60,
        metadata=env_doc(
            "SEGMENT_REFRESH_MS", "budget for asking the origin for a fresh segment cookie"
        ),
    )
    segment_refresh_ahead_s: int = field(
        default=3600,
        metadata=env_doc(
            "SEGMENT_REFRESH_AHEAD_S", "refresh a segment cookie this long before it expires"
        ),
    )
    cache_name: str = field(
        default="p13n-edge",
        metadata=env_doc("CACHE_NAME", "the cache's name in `Cache-Status` (1-32 of A-Za-z0-9._-)"),
    )
    collector_site_key: str = field(
        default="",
        metadata=env_doc(
            "COLLECTOR_SITE_KEY",
            "site key sent with exposures (`X-P13N-Site-Key`), one of the "
            "origin's P13N_COLLECTOR_SITE_KEYS",
            default="none",
        ),
    )

    def event_headers(self) -> dict[str, str]:
        """Headers of an exposure post to the collector."""
        headers = {"content-type": "application/json"}
        if self.collector_site_key:
            headers["x-p13n-site-key"] = self.collector_site_key
        return headers


def parse_keyring(value: str, name: str) -> KeyRing:
    """``"k2:secret2,k1:secret1"`` -> a ring signing with k2 and still accepting k1."""
    keys = []
    for part in value.split(","):
        kid, sep, secret = part.strip().partition(":")
        if not sep:
            raise SettingsError(name, "each key must be kid:secret")
        try:
            keys.append(SigningKey(kid, secret.encode("utf-8")))
        except ValueError as exc:
            raise SettingsError(name, str(exc)) from exc
    if not 1 <= len(keys) <= 2:
        raise SettingsError(name, "holds one key, or two during a rotation")
    return KeyRing(keys[0], keys[1] if len(keys) == 2 else None)


def _url(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name) or default
    if not value:
        raise SettingsError(name, "is required")
    value = value.rstrip("/")
    if not _URL_RE.fullmatch(value):
        raise SettingsError(name, "must be an http(s) origin without a path")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(name, "must be an integer") from exc
    if not lo <= value <= hi:
        raise SettingsError(name, f"must be between {lo} and {hi}")
    return value


def _default_items(raw: str | None) -> tuple[ListItem, ...]:
    if not raw:
        return ()
    try:
        doc = json.loads(raw)
        if not isinstance(doc, list):
            raise SettingsError("DEFAULT_ITEMS", "must be a JSON array")
        return tuple(parse_list_item(d, f"DEFAULT_ITEMS[{i}]") for i, d in enumerate(doc))
    except (ValueError, CacheKeysError) as exc:
        raise SettingsError("DEFAULT_ITEMS", str(exc)) from exc


def settings_from_env(env: Mapping[str, str]) -> EdgeSettings:
    """Build and validate the settings; raises ``SettingsError`` naming the bad variable."""
    origin = _url(env, "ORIGIN_URL")
    seg_keys = env.get("SEGMENT_KEYS")
    if not seg_keys:
        raise SettingsError("SEGMENT_KEYS", "is required (a secret)")
    segment_ring = parse_keyring(seg_keys, "SEGMENT_KEYS")
    ctx_keys = env.get("CONTEXT_KEYS")
    locales = tuple(x.strip().lower() for x in (env.get("LOCALES") or "en-us").split(","))
    if not all(_LOCALE_RE.fullmatch(x) for x in locales):
        raise SettingsError("LOCALES", "must be comma-separated tags such as en-us")
    cache_name = env.get("CACHE_NAME") or "p13n-edge"
    if not _NAME_RE.fullmatch(cache_name):
        raise SettingsError("CACHE_NAME", "must be 1-32 characters of A-Za-z0-9._-")
    return EdgeSettings(
        origin_url=origin,
        segment_keys=segment_ring,
        context_keys=parse_keyring(ctx_keys, "CONTEXT_KEYS") if ctx_keys else segment_ring,
        collector_url=_url(env, "COLLECTOR_URL", origin),
        locales=locales,
        default_items=_default_items(env.get("DEFAULT_ITEMS")),
        origin_timeout_ms=_int(env, "ORIGIN_TIMEOUT_MS", 800, 1, 30_000),
        segment_refresh_ms=_int(env, "SEGMENT_REFRESH_MS", 60, 0, 5_000),
        segment_refresh_ahead_s=_int(env, "SEGMENT_REFRESH_AHEAD_S", 3600, 0, 30 * 86400),
        cache_name=cache_name,
        collector_site_key=(env.get("COLLECTOR_SITE_KEY") or "").strip(),
    )
