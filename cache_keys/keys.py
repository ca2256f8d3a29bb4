"""Canonical cache keys and cache tags for personalized fragments.

One key per (route, hseg, variants, locale, device class, generation), as a URL path that the
Cloudflare Cache API and the self-hosted edge both use::

    >>> build_key("Home", parse_hseg("q3z5m2k7r4yx2b6a"), {"rail-algo": 1, "Banner": 0},
    ...           locale="en_US", device="Mobile", generation=7).path
    '/__p13n/v1/home/q3z5m2k7r4yx2b6a/en-us/mobile/banner.0+rail-algo.1/g7'

Normalization: route, locale and device lowercased (``_`` in a locale becomes ``-``),
variants sorted by experiment key, no variants written as ``-``. Anything outside the allowed
characters or lengths is rejected, never repaired; so is an unknown device class. A segment
is accepted only as an ``Hseg`` (a keyed hash), and slugs shaped like a shopper id are
refused, so a raw shopper id cannot reach a key or a tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cache_keys.errors import KeyPartError, TagError
from cache_keys.segments import Hseg, is_hseg
from cache_keys.tokens import is_shopper_id

__all__ = [
    "DEVICE_CLASSES",
    "KEY_PREFIX",
    "MAX_KEY_LENGTH",
    "MAX_TAG_HEADER_BYTES",
    "TAG_KINDS",
    "CacheKey",
    "build_key",
    "cache_tag_header",
    "compose_tags",
    "normalize_slug",
    "tag",
]

KEY_PREFIX = "/__p13n/v1"
MAX_KEY_LENGTH = 512
DEVICE_CLASSES = frozenset({"desktop", "mobile", "tablet", "bot"})
TAG_KINDS = frozenset({"sku", "cat", "seg", "route", "exp"})
# Cloudflare: a Cache-Tag header holds at most 16 KB of comma-separated tags, each at most
# 1,024 characters of printable ASCII without spaces or commas.
MAX_TAG_HEADER_BYTES = 16 * 1024
MAX_TAG_LENGTH = 1024
_SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_LOCALE_RE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8}){0,2}")
_TAG_VALUE_RE = re.compile(r"[a-z0-9][a-z0-9._/-]{0,127}")


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A normalized cache key; ``path`` is its canonical form."""

    route: str
    hseg: Hseg
    variants: tuple[tuple[str, int], ...]
    locale: str
    device: str
    generation: int
    # The canonical form, made once: edges look keys up on every request.
    path: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        variants = "+".join(f"{k}.{v}" for k, v in self.variants) or "-"
        path = (
            f"{KEY_PREFIX}/{self.route}/{self.hseg}/{self.locale}/{self.device}"
            f"/{variants}/g{self.generation}"
        )
        object.__setattr__(self, "path", path)

    def url(self, host: str) -> str:
        """The key as an absolute URL on the shop's own host (Cloudflare Cache API form)."""
        if not re.fullmatch(r"[a-z0-9.-]{1,253}(:[0-9]{1,5})?", host.lower()):
            raise KeyPartError(f"host {host!r} is not a plain host name")
        return f"https://{host.lower()}{self.path}"


def normalize_slug(value: str, what: str) -> str:
    """Lowercase and validate a route or experiment key (``Home`` -> ``home``)."""
    if not isinstance(value, str):
        raise KeyPartError(f"{what} must be a string")
    if is_shopper_id(value):
        raise KeyPartError(f"{what} has the shape of a shopper id; refusing to key on it")
    slug = value.strip().lower()
    if not _SLUG_RE.fullmatch(slug):
        raise KeyPartError(f"{what} {value!r} must be 1-40 characters of a-z, 0-9 and '-'")
    return slug


def _normalize_locale(locale: str) -> str:
    norm = locale.strip().lower().replace("_", "-")
    if not _LOCALE_RE.fullmatch(norm):
        raise KeyPartError(f"locale {locale!r} is not a BCP 47 tag such as en-us")
    return norm


def build_key(
    route: str,
    hseg: Hseg,
    variants: Mapping[str, int],
    *,
    locale: str,
    device: str,
    generation: int,
) -> CacheKey:
    """Build the canonical key; raises ``KeyPartError`` on any malformed dimension."""
    if not isinstance(hseg, Hseg) or not is_hseg(hseg):
        raise KeyPartError("segment must be an Hseg (a keyed hash), never a raw value")
    device_norm = device.strip().lower() if isinstance(device, str) else ""
    if device_norm not in DEVICE_CLASSES:
        raise KeyPartError(f"device {device!r} is not one of {sorted(DEVICE_CLASSES)}")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise KeyPartError("generation must be a non-negative integer")
    norm_variants = []
    for exp_key, index in variants.items():
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 100:
            raise KeyPartError(f"variant of {exp_key!r} must be an integer from 0 to 99")
        norm_variants.append((normalize_slug(exp_key, "experiment key"), index))
    norm_variants.sort()
    key = CacheKey(
        route=normalize_slug(route, "route"),
        hseg=hseg,
        variants=tuple(norm_variants),
        locale=_normalize_locale(locale),
        device=device_norm,
        generation=generation,
    )
    if len(key.path) > MAX_KEY_LENGTH:
        raise KeyPartError(f"cache key longer than {MAX_KEY_LENGTH} characters")
    return key


def tag(kind: str, value: str) -> str:
    """One cache tag, ``kind:value``; ``seg`` takes only an hseg (``tag("sku", "AB-1")`` ->
    ``"sku:ab-1"``; Cloudflare compares tags case-insensitively, so we lowercase)."""
    if kind not in TAG_KINDS:
        raise TagError(f"tag kind {kind!r} is not one of {sorted(TAG_KINDS)}")
    if kind == "seg":
        if not is_hseg(value):
            raise TagError("seg: tags take only an hseg")
        return f"seg:{value}"
    if kind in ("route", "exp"):
        try:
            return f"{kind}:{normalize_slug(value, kind)}"
        except KeyPartError as exc:
            raise TagError(str(exc)) from exc
    if not isinstance(value, str) or is_shopper_id(value):
        raise TagError(f"{kind}: value must be a catalog id, not a shopper id")
    norm = value.strip().lower()
    if not _TAG_VALUE_RE.fullmatch(norm):
        raise TagError(f"{kind}: value {value!r} must be 1-128 characters of a-z 0-9 . _ / -")
    return f"{kind}:{norm}"


def compose_tags(
    *,
    route: str,
    hseg: Hseg,
    experiments: Iterable[str] = (),
    skus: Iterable[str] = (),
    categories: Iterable[str] = (),
) -> list[str]:
    """The tags of one stored fragment, de-duplicated, in a stable order."""
    out = [tag("route", route), tag("seg", hseg)]
    out += [tag("exp", e) for e in experiments]
    out += [tag("cat", c) for c in categories]
    out += [tag("sku", s) for s in skus]
    return list(dict.fromkeys(out))


def cache_tag_header(tags: Iterable[str]) -> str:
    """Join tags into one ``Cache-Tag`` header value within the 16 KB limit."""
    tag_list = list(tags)
    for t in tag_list:
        if len(t) > MAX_TAG_LENGTH or not t.isascii() or not t.isprintable() or " " in t:
            raise TagError(f"tag {t[:40]!r} is not printable ASCII without spaces")
        if "," in t:
            raise TagError(f"tag {t[:40]!r} contains a comma")
    header = ",".join(tag_list)
    if len(header.encode("ascii")) > MAX_TAG_HEADER_BYTES:
        raise TagError(f"Cache-Tag header would be {len(header)} bytes, over 16 KB")
    return header
