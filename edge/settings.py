"""The edge's settings: one frozen value built once from the Worker ``env`` or ``os.environ``.

Variables (the Worker's ``[vars]`` and secrets; the self-hosted proxy reads the same names):

| name | meaning | default |
|---|---|---|
| ``ORIGIN_URL`` | origin base URL, e.g. ``https://origin.shop.example`` | required |
| ``SEGMENT_KEYS`` (secret) | ``kid:secret[,kid:secret]``, current first | required |
| ``CONTEXT_KEYS`` (secret) | same form, for the context cookie | ``SEGMENT_KEYS`` |
| ``COLLECTOR_URL`` | where exposure events go (``POST /v1/events``) | ``ORIGIN_URL`` |
| ``COLLECTOR_SITE_KEY`` | site key sent with exposures (``X-P13N-Site-Key``) | none |
| ``LOCALES`` | locales keyed on, first is the default | ``en-us`` |
| ``DEFAULT_ITEMS`` | JSON list of list items: the built-in default rail | ``[]`` |
| ``ORIGIN_TIMEOUT_MS`` | budget for a list or config fetch on the request path | ``800`` |
| ``SEGMENT_REFRESH_MS`` | budget for asking the origin for a fresh segment cookie | ``60`` |
| ``SEGMENT_REFRESH_AHEAD_S`` | refresh a segment cookie this long before it expires | ``3600`` |
| ``CACHE_NAME`` | the cache's name in ``Cache-Status`` | ``p13n-edge`` |
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cache_keys.errors import CacheKeysError
from cache_keys.tokens import KeyRing, SigningKey
from cache_keys.wire import ListItem, parse_list_item
from edge.errors import SettingsError

__all__ = ["EdgeSettings", "parse_keyring", "settings_from_env"]

_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_LOCALE_RE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8}){0,2}")
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """Everything the edge needs besides the edge config."""

    origin_url: str
    segment_keys: KeyRing
    context_keys: KeyRing
    collector_url: str
    locales: tuple[str, ...] = ("en-us",)
    default_items: tuple[ListItem, ...] = ()
    origin_timeout_ms: int = 800
    segment_refresh_ms: int = 60
    segment_refresh_ahead_s: int = 3600
    cache_name: str = "p13n-edge"
    collector_site_key: str = ""

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
