"""The purge message the origin pushes to self-hosted edges (and logs for Cloudflare).

Version 1, JSON::

    {"v": 1, "id": "inv-…", "mode": "hard", "tags": ["sku:ab-1"],
     "generations": {"sku:ab-1": [3, 5]}, "mask_add": ["AB-1"], "issued_at_ms": 1764000000000}

``generations`` carries each tag's new (soft, hard) generation so an edge that applies the
message gets the same state as one that later pulls the edge config. Tag ``*`` means all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cache_keys.errors import WireError
from cache_keys.wire import _check as c

__all__ = ["ALL_TAG", "PURGE_MODES", "PurgeMessage", "decode_purge", "encode_purge"]

ALL_TAG = "*"
PURGE_MODES = frozenset({"soft", "hard"})
MAX_PURGE_TAGS = 1000
_TAG_RE = re.compile(r"\*|(sku|cat|seg|route|exp):[a-z0-9][a-z0-9._/-]{0,127}")
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class PurgeMessage:
    """One invalidation, as pushed to edges."""

    id: str
    mode: str
    tags: tuple[str, ...]
    generations: dict[str, tuple[int, int]]
    mask_add: tuple[str, ...]
    issued_at_ms: int


def encode_purge(msg: PurgeMessage) -> bytes:
    """The message as compact JSON bytes."""
    doc = {
        "v": 1,
        "id": msg.id,
        "mode": msg.mode,
        "tags": list(msg.tags),
        "generations": {t: list(g) for t, g in msg.generations.items()},
        "mask_add": list(msg.mask_add),
        "issued_at_ms": msg.issued_at_ms,
    }
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def decode_purge(raw: bytes | str) -> PurgeMessage:
    """Parse and validate a purge message; raises ``WireError`` naming the bad field."""
    try:
        doc: Any = json.loads(raw)
    except ValueError as exc:
        raise WireError("$", f"not JSON: {exc}") from exc
    doc = c.obj(doc, "$")
    c.version(doc, "v", 1)
    mode = c.text(doc.get("mode"), "mode")
    if mode not in PURGE_MODES:
        raise WireError("mode", "must be soft or hard")
    tags = tuple(
        c.text(t, f"tags[{i}]", _TAG_RE, 140)
        for i, t in enumerate(c.seq(doc.get("tags"), "tags", MAX_PURGE_TAGS))
    )
    if not tags:
        raise WireError("tags", "must name at least one tag")
    gens: dict[str, tuple[int, int]] = {}
    for t, pair in c.obj(doc.get("generations", {}), "generations").items():
        c.text(t, "generations", _TAG_RE, 140)
        p = c.seq(pair, f"generations.{t}", 2)
        if len(p) != 2:
            raise WireError(f"generations.{t}", "must be [soft, hard]")
        gens[t] = (c.integer(p[0], f"generations.{t}[0]"), c.integer(p[1], f"generations.{t}[1]"))
    mask = tuple(
        c.text(s, f"mask_add[{i}]", c.ITEM_RE)
        for i, s in enumerate(c.seq(doc.get("mask_add", []), "mask_add", MAX_PURGE_TAGS))
    )
    return PurgeMessage(
        id=c.text(doc.get("id"), "id", _ID_RE),
        mode=mode,
        tags=tags,
        generations=gens,
        mask_add=mask,
        issued_at_ms=c.integer(doc.get("issued_at_ms"), "issued_at_ms"),
    )
