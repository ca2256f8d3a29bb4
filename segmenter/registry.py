"""The event schema registry: every published version of the event, and how old ones upcast.

    version 1 (major 1)  the original event
    version 2 (major 1)  + ``position``: the item's 0-based place in the list the shopper saw
                         it in (impressions and clicks from a rail), for position-bias models
    version 3 (major 1)  + ``identify`` events and their ``anon`` field (the anonymous id that
                         signed in as ``user``), and ``user`` widened to the shop's customer
                         ids (``segmenter.shoppers``: ``.`` and ``:`` allowed too)
    version 4 (major 1)  + ``degraded``: an exposure marker saying the answer shown was
                         degraded (stale-if-error or a fallback list), sent beside the
                         ordinary exposure with its own daily id; the guardrails count it

Rules (``segmenter.compat`` enforces them against ``event_schema.lock.json``):

- a published version never changes: old events keep validating, byte for byte;
- a version in the same major as its predecessor only *adds*: optional fields, and values of
  the fields it keeps (an enum's new values after its old ones, wider bounds, a text pattern
  accepting every value the old one did); kinds never change. Its events that use none of the
  additions read as the predecessor's once the new fields are dropped, so consumers not yet
  upgraded keep working (writers send the others in the new version);
- a version that starts a new major (anything else: a removed, renamed, retyped, narrowed or
  newly required field) declares an upcaster from its predecessor's documents, and every
  golden example of the predecessor must upcast to a valid document of the new version.

Writers emit the oldest version that carries an event (``version_of``), so a v1 consumer
still reads every event that does not use a newer field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CURRENT",
    "EVENT_TYPES",
    "ITEM_TYPES",
    "V1_EVENT_TYPES",
    "VERSIONS",
    "Field",
    "Version",
    "describe",
    "fits",
    "upcast",
]

V1_EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase", "search", "exposure")
# Version 3 adds ``identify``: ``user`` signed in, ``anon`` is the anonymous id it was.
EVENT_TYPES = (*V1_EVENT_TYPES, "identify")
# Types that are about one item, so ``item`` is required.
ITEM_TYPES = frozenset({"view", "add_to_cart", "remove_from_cart", "purchase"})

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Field:
    """One field: its kind (text, int, number, bool, enum) and bounds."""

    kind: str
    required: bool = False
    pattern: str = ""  # text: full-match regex, at most 64 characters
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[str, ...] = ()  # enum

    def spec(self) -> dict[str, Any]:
        """The field as plain data (what the lock file records)."""
        out: dict[str, Any] = {"kind": self.kind, "required": self.required}
        if self.pattern:
            out["pattern"] = self.pattern
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.values:
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True, slots=True)
class Version:
    """One published version: its major, fields, upcaster (new majors) and golden examples."""

    v: int
    major: int
    fields: Mapping[str, Field]
    examples: tuple[Doc, ...]
    upcaster: Callable[[Doc], Doc] | None = None
    names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset({"v", *self.fields}))


def _text(pattern: str, required: bool = False) -> Field:
    return Field("text", required, pattern)


_SLUG = r"[a-z0-9][a-z0-9-]{0,39}"
_ITEM = r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}"
_T0 = 1_700_000_000_000
V1_FIELDS: dict[str, Field] = {
    "event_id": _text(r"[\x21-\x7e]{1,64}", required=True),
    "type": Field("enum", True, values=V1_EVENT_TYPES),
    "user": _text(r"[A-Za-z0-9_-]{1,64}", required=True),
    "ts": Field("int", True, minimum=946_684_800_000, maximum=4_102_444_800_000),
    "item": _text(_ITEM),
    "category": _text(_ITEM),
    "price": Field("number", minimum=0, maximum=1_000_000),
    "qty": Field("int", minimum=1, maximum=1000),
    "session": _text(r"[A-Za-z0-9._:-]{1,64}"),
    "experiment": _text(_SLUG),
    "variant": _text(_SLUG),
    "traceparent": _text(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}"),
    "bot": Field("bool"),
}
_V1_EXAMPLES: tuple[Doc, ...] = (
    {"v": 1, "event_id": "e1", "type": "view", "user": "u1", "item": "sku-1", "ts": _T0},
    {"v": 1, "event_id": "e2", "type": "purchase", "user": "u1", "item": "sku-1", "ts": _T0,
     "price": 9.5, "qty": 2, "category": "grocery", "session": "s1"},
    {"v": 1, "event_id": "e3", "type": "exposure", "user": "u1", "ts": _T0,
     "experiment": "hero", "variant": "b", "bot": False},
)  # fmt: skip

_V2_EXAMPLES: tuple[Doc, ...] = (
    *({**d, "v": 2} for d in _V1_EXAMPLES),
    {"v": 2, "event_id": "e4", "type": "view", "user": "u1", "item": "sku-2", "ts": _T0,
     "position": 3, "session": "s1"},
)  # fmt: skip

_V3_EXAMPLES: tuple[Doc, ...] = (
    *({**d, "v": 3} for d in _V2_EXAMPLES),
    {"v": 3, "event_id": "e5", "type": "identify", "user": "cust_48213", "ts": _T0,
     "anon": "Q2hv0sZ9kP1fX7aLm3Tq_w", "session": "s1"},
    {"v": 3, "event_id": "e6", "type": "view", "user": "acme:cust.48213", "item": "sku-1",
     "ts": _T0},
)  # fmt: skip
# Every shopper id, anonymous or customer, fits this envelope (no "|", "{", "}" or spaces: ids
# go into hash tags and "user|session" fields).
_SHOPPER = r"[A-Za-z0-9_.:-]{1,64}"
V2_FIELDS: dict[str, Field] = {**V1_FIELDS, "position": Field("int", minimum=0, maximum=999)}
V3_FIELDS: dict[str, Field] = {
    **V2_FIELDS,
    "type": Field("enum", True, values=EVENT_TYPES),
    "user": _text(_SHOPPER, required=True),
    "anon": _text(_SHOPPER),
}

V4_FIELDS: dict[str, Field] = {**V3_FIELDS, "degraded": Field("bool")}
_V4_EXAMPLES: tuple[Doc, ...] = (
    *({**d, "v": 4} for d in _V3_EXAMPLES),
    {"v": 4, "event_id": "e7", "type": "exposure", "user": "u1", "ts": _T0,
     "experiment": "hero", "variant": "b", "degraded": True},
)  # fmt: skip

VERSIONS: dict[int, Version] = {
    1: Version(1, 1, V1_FIELDS, _V1_EXAMPLES),
    2: Version(2, 1, V2_FIELDS, _V2_EXAMPLES),
    3: Version(3, 1, V3_FIELDS, _V3_EXAMPLES),
    4: Version(4, 1, V4_FIELDS, _V4_EXAMPLES),
}
CURRENT = max(VERSIONS)


def upcast(doc: Doc, to: int = CURRENT) -> Doc:
    """A document of an older major -> the same event in the major of version ``to``.

    Versions of one major read each other's documents as they are (the newer fields are
    optional), so only the upcasters of the majors in between run.
    """
    v = doc["v"]
    for step in range(v + 1, to + 1):
        version = VERSIONS[step]
        if version.upcaster is not None:
            doc = version.upcaster(doc)
    return doc


def describe(versions: Mapping[int, Version] | None = None) -> dict[str, Any]:
    """The registry as plain data: what ``event_schema.lock.json`` pins."""
    vs = VERSIONS if versions is None else versions
    return {
        str(v.v): {
            "major": v.major,
            "fields": {name: f.spec() for name, f in sorted(v.fields.items())},
            "upcaster": v.upcaster is not None,
            "examples": list(v.examples),
        }
        for v in vs.values()
    }


def compile_pattern(f: Field) -> re.Pattern[str]:
    """The compiled full-match pattern of a text field."""
    return re.compile(f.pattern)


def fits(f: Field) -> Callable[[Any], bool]:
    """Whether a value fits an enum or text field ``f``: membership, or the pattern's full
    match, at C speed for one character class with a length ("[A-Za-z0-9_-]{1,64}": strip
    the class, nothing may be left)."""
    if f.kind == "enum":
        return frozenset(f.values).__contains__
    m = re.fullmatch(r"\[([A-Za-z0-9_.:/-]+)\]\{1,(\d+)\}", f.pattern)
    if m is None:
        rx = compile_pattern(f)
        return lambda value: type(value) is str and rx.fullmatch(value) is not None
    allowed = "".join(c for c in map(chr, range(128)) if re.fullmatch(f"[{m[1]}]", c))
    longest = int(m[2])
    return lambda value: (
        type(value) is str and 0 < len(value) <= longest and not value.strip(allowed)
    )
