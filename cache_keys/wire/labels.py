"""Item labels for people on segment lists and rail answers: a name and an image URL.

Both are optional and written only when set, so a list or a rail without labels has the
form it always had (and the same ETag). They come from the catalog (``p13n import catalog``,
the admin API) and are cut to fit the wire, where every list of 100-300 items travels to
every edge:

    "Organic whole milk from grass-fed cows, 1 litre, glass bottle, returnable deposit …"
        -> at most MAX_ITEM_NAME characters, the cut marked with "…"
    "https://cdn.shop.example/milk.jpg" -> kept (an absolute http(s) URL, at most
        MAX_ITEM_IMAGE_URL characters); a longer or other URL -> left out (a cut URL is broken)

Readers reject a label that does not fit: a storefront puts them into HTML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cache_keys.errors import WireError
from cache_keys.wire import _check as c

__all__ = [
    "MAX_ITEM_IMAGE_URL",
    "MAX_ITEM_NAME",
    "fit_image_url",
    "fit_name",
    "labels_to_json",
    "parse_labels",
]

MAX_ITEM_NAME = 80
MAX_ITEM_IMAGE_URL = 512
# An absolute http(s) URL without spaces, quotes, angle brackets or backslashes (it lands in
# HTML attributes); the catalog accepts the same shape.
IMAGE_URL_RE = re.compile(r"https?://[^\s\"'<>\\]+")


def fit_name(name: str) -> str:
    """The name as lists carry it: trimmed, at most ``MAX_ITEM_NAME`` characters."""
    name = " ".join(name.split()) if name.isprintable() else ""
    if len(name) <= MAX_ITEM_NAME:
        return name
    return name[: MAX_ITEM_NAME - 1].rstrip() + "…"


def fit_image_url(url: str) -> str:
    """The URL when lists can carry it, else "" (left out rather than cut)."""
    ok = len(url) <= MAX_ITEM_IMAGE_URL and IMAGE_URL_RE.fullmatch(url) is not None
    return url if ok else ""


def parse_labels(d: Mapping[str, Any], f: str) -> tuple[str, str]:
    """``(name, image_url)`` of a list or rail item document; ``WireError`` if either does
    not fit."""
    name = c.text(d.get("name", ""), f"{f}.name", max_len=MAX_ITEM_NAME)
    if not name.isprintable():
        raise WireError(f"{f}.name", "must be printable text")
    image = c.text(d.get("image_url", ""), f"{f}.image_url", max_len=MAX_ITEM_IMAGE_URL)
    if image and IMAGE_URL_RE.fullmatch(image) is None:
        raise WireError(f"{f}.image_url", "must be an absolute http(s) URL")
    return name, image


def labels_to_json(name: str, image_url: str, price: float | None) -> dict[str, Any]:
    """The label fields of a rail item document: only those set."""
    doc: dict[str, Any] = {}
    if name:
        doc["name"] = name
    if image_url:
        doc["image_url"] = image_url
    if price is not None:
        doc["price"] = price
    return doc
