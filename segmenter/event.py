"""The event: one record, one validation step, one msgpack encode/decode pair.

    {"v": 1, "event_id": "e1", "type": "view", "user": "u1", "item": "sku-1", "ts": 1.7e12}
        -> Event(event_id="e1", type="view", user="u1", ts=1700000000000, item="sku-1", …)
    {"v": 2, …, "position": 3} -> Event(…, position=3)
    {"v": 3, "type": "identify", "user": "cust_1", "anon": "Q2hv…", …} -> Event(…, anon="Q2hv…")
    {"v": 9, …} -> Rejection(field="v", problem="unsupported version 9; this build reads 1, 2, 3")

``user`` is a shopper id of either kind (``segmenter.shoppers``: the anonymous id or the shop's
customer id); here only its envelope is checked, the ingress points check the kind. An
``identify`` event links an anonymous shopper to the customer they signed in as: ``user`` is
the customer, ``anon`` the anonymous id (the processor merges the anonymous features into the
customer's, exactly once: ``segmenter.features``).


The versions, their fields and upcasters live in ``segmenter.registry``; this module reads any
registered version (upcasting older majors) into the current ``Event``. JSON arrives at the
collector; msgpack of the same field names travels on the streams, in the oldest version that
carries the event. A consumer that meets an unknown version parks the entry in the
dead-letter stream.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from cache_keys.wire._check import whole_number
from segmenter.registry import CURRENT, EVENT_TYPES, ITEM_TYPES, VERSIONS, Field, fits, upcast

__all__ = [
    "EVENT_TYPES",
    "ITEM_TYPES",
    "TEXT_FIELDS",
    "VERSION",
    "Event",
    "Rejection",
    "decode",
    "encode",
    "to_doc",
    "validate",
    "version_of",
]

VERSION = CURRENT
_LATEST = VERSIONS[CURRENT].fields
_SUPPORTED = ", ".join(map(str, VERSIONS))


def _bound(name: str, side: str) -> Any:
    return getattr(_LATEST[name], side)


MIN_TS_MS = int(_bound("ts", "minimum"))  # 2000-01-01
MAX_TS_MS = int(_bound("ts", "maximum"))  # 2100-01-01
MAX_PRICE = float(_bound("price", "maximum"))
MAX_QTY = int(_bound("qty", "maximum"))
MAX_POSITION = int(_bound("position", "maximum"))

TEXT_FIELDS: dict[str, re.Pattern[str]] = {
    name: re.compile(f.pattern) for name, f in _LATEST.items() if f.kind == "text"
}
EVENT_ID_RE = TEXT_FIELDS["event_id"]
USER_RE = TEXT_FIELDS["user"]
ITEM_RE = TEXT_FIELDS["item"]
SESSION_RE = TEXT_FIELDS["session"]
SLUG_RE = TEXT_FIELDS["experiment"]
TRACEPARENT_RE = TEXT_FIELDS["traceparent"]
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_SLUG = "abcdefghijklmnopqrstuvwxyz0123456789"
# The same patterns as character sets (allowed, allowed first, longest): ``str.strip`` of the
# allowed characters leaves nothing exactly when the value matches, at C speed; a test checks
# them against the regular expressions above.
_CHARSETS: dict[str, tuple[str, str, int]] = {
    "event_id": ("".join(map(chr, range(0x21, 0x7F))), "", 64),
    "user": (_ALNUM + "_.:-", "", 64),
    "anon": (_ALNUM + "_.:-", "", 64),
    "item": (_ALNUM + "._/-", _ALNUM, 64),
    "category": (_ALNUM + "._/-", _ALNUM, 64),
    "session": (_ALNUM + "._:-", "", 64),
    "experiment": (_SLUG + "-", _SLUG, 40),
    "variant": (_SLUG + "-", _SLUG, 40),
}
# Every field name of every version ("v" included): the labels a rejection may carry.
FIELDS = frozenset().union(*(v.names for v in VERSIONS.values()))
REQUIRED = tuple(name for name, f in _LATEST.items() if f.required)
_MAJOR = VERSIONS[CURRENT].major
# The versions whose documents need an upcaster to reach the current major, and the current
# major's versions oldest first (a writer picks the first that carries the event).
_OLD_MAJORS = frozenset(v for v, spec in VERSIONS.items() if spec.major != _MAJOR)
_WRITABLE = tuple(sorted(v for v, spec in VERSIONS.items() if spec.major == _MAJOR))
_REQUIRED_SET = frozenset(REQUIRED)


def _accepts(f: Field, value: Any) -> bool:
    """Whether a text or enum field ``f`` accepts ``value`` (the fields later versions widen)."""
    if f.kind == "enum":
        return value in f.values
    return isinstance(value, str) and re.fullmatch(f.pattern, value) is not None


# Per version, the fields a later version of the major widened (``type`` gains ``identify``
# in v3, ``user`` customer ids): a document of that version is checked against its own.
_NARROWER: dict[int, tuple[tuple[str, Field], ...]] = {
    v: tuple((n, f) for n, f in spec.fields.items() if n in _LATEST and _LATEST[n] != f)
    for v, spec in VERSIONS.items()
}
# Text values already seen to match their pattern, for the fields whose values repeat
# (shoppers, items, sessions…): a set lookup instead of a regex; bounded, emptied when full.
# The bound is per set and every process that validates (collector, processor) holds them
# all: new sessions and anonymous ids arrive for as long as a shop runs, so each set fills
# to its bound, and a few thousand repeats are what the memo is for (~0.5 MB per set).
_KNOWN: dict[str, set[str]] = {
    name: set() for name in ("user", "anon", "item", "category", "session", "experiment", "variant")
}
_KNOWN_MAX = 4096


# Not ``frozen``: that sets each field through ``object.__setattr__`` (3.9 us per event, the
# processor's costliest allocation; 0.4 us unfrozen). Nothing assigns to an event.
@dataclass(slots=True, unsafe_hash=True)
class Event:
    """One valid event (absent optional text fields are empty strings); never mutated."""

    event_id: str
    type: str
    user: str
    ts: int
    item: str = ""
    category: str = ""
    price: float = 0.0
    qty: int = 1
    session: str = ""
    experiment: str = ""
    variant: str = ""
    traceparent: str = ""
    bot: bool = False
    position: int | None = None  # v2: 0-based place in the list it was shown in
    anon: str = ""  # identify only: the anonymous id signing in as ``user``
    degraded: bool = False  # v4, exposures: the answer shown was degraded (guardrails)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input is not a valid event: the field at fault and the problem."""

    field: str
    problem: str

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.problem}"


# An identify whose anonymous id is its user: well-formed, but meaningless (no JSON Schema
# can say "differs from another field", so the collector answers it 422, not 400).
SIGNS_IN_AS_ITSELF = Rejection("anon", "must differ from user")


class _Invalid(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.rejection = Rejection(field, problem)


def _int(d: Mapping[str, Any], name: str, lo: int, hi: int, default: int) -> int:
    value = whole_number(d.get(name, default))  # 294.0 is 294, as JSON Schema reads it
    if value is None:
        raise _Invalid(name, "must be an integer")
    if not lo <= value <= hi:
        raise _Invalid(name, f"must be between {lo} and {hi}")
    return value


def _price(d: Mapping[str, Any]) -> float:
    value = d.get("price", 0.0)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _Invalid("price", "must be a number")
    if not 0.0 <= value <= MAX_PRICE:  # also rejects NaN
        raise _Invalid("price", f"must be between 0 and {MAX_PRICE:g}")
    return float(value)


# Per (version, widened field): values already seen to fit that version's narrower field.
_NARROW_OK: dict[tuple[int, str], set[str]] = {
    (v, name): set() for v, fields in _NARROWER.items() for name, _ in fields
}


def _check_narrower(
    doc: Mapping[str, Any], v: int, narrower: tuple[tuple[str, Field], ...]
) -> None:
    """A value a later version of the major added (``identify``, a customer id with ``.``)
    in a document of an earlier version: named as such."""
    for name, f in narrower:
        value = doc.get(name)
        if value is None:
            continue
        seen = _NARROW_OK[v, name]
        if type(value) is str and value in seen:  # shoppers repeat: a set lookup, no regex
            continue
        if _accepts(f, value):
            if type(value) is str:
                if len(seen) >= _KNOWN_MAX:
                    seen.clear()
                seen.add(value)
            continue
        if not _accepts(_LATEST[name], value):
            continue  # wrong in every version: the field's own check says how
        since = min(n for n, spec in VERSIONS.items() if _accepts(spec.fields[name], value))
        what = repr(value) if f.kind == "enum" else "this value"
        raise _Invalid(name, f"{what} is not part of version {v} (added in version {since})")


def _check_shape(doc: Any) -> Mapping[str, Any]:
    if type(doc) is not dict and not isinstance(doc, Mapping):
        raise _Invalid("$", "an event must be an object")
    v = whole_number(doc.get("v"))  # not True; 1.0 is 1, as JSON Schema reads it
    if v is None or v not in VERSIONS:
        raise _Invalid("v", f"unsupported version {doc.get('v')!r}; this build reads {_SUPPORTED}")
    names = VERSIONS[v].names
    if not names.issuperset(doc):
        unknown = [k for k in doc if k not in names]
        if unknown[0] in FIELDS:  # a field of another version: say which
            since = min(n for n, spec in VERSIONS.items() if unknown[0] in spec.names)
            raise _Invalid(unknown[0], f"is not part of version {v} (added in version {since})")
        # The name goes into the reason, not the field: fields become metric labels, and a
        # client's made-up key (an e-mail address, 200 kB of text) must not.
        raise _Invalid("$", f"unknown field {str(unknown[0])[:64]!r}")
    if not _REQUIRED_SET.issubset(doc):
        name = next(n for n in REQUIRED if n not in doc)
        raise _Invalid(name, "is required")
    if doc["type"] not in EVENT_TYPES:
        raise _Invalid("type", f"must be one of {', '.join(EVENT_TYPES)}")
    narrower = _NARROWER[v]
    if narrower and v not in _OLD_MAJORS:
        _check_narrower(doc, v, narrower)
    return upcast({**doc, "v": v}) if v in _OLD_MAJORS else doc


def _matches(name: str, value: str, rx: re.Pattern[str]) -> bool:
    """Whether ``value`` matches the field's pattern (64 characters at most)."""
    charset = _CHARSETS.get(name)
    if charset is None:
        return len(value) <= 64 and rx.fullmatch(value) is not None
    allowed, first, longest = charset
    return (
        0 < len(value) <= longest and not value.strip(allowed) and (not first or value[0] in first)
    )


def _texts(d: Mapping[str, Any]) -> dict[str, str]:
    """The text fields present in ``d``, each checked against its pattern (64 chars max)."""
    out: dict[str, str] = {}
    for name, value in d.items():
        rx = TEXT_FIELDS.get(name)
        if rx is None:
            continue
        if type(value) is not str:
            raise _Invalid(name, "must be a string")
        known = _KNOWN.get(name)
        if known is None or value not in known:
            if not _matches(name, value, rx):
                raise _Invalid(name, f"must match {rx.pattern}")
            if known is not None:
                if len(known) >= _KNOWN_MAX:
                    known.clear()
                known.add(value)
        out[name] = value
    return out


def _build(d: Mapping[str, Any]) -> Event:
    kind: str = d["type"]
    bot, degraded = d.get("bot", False), d.get("degraded", False)
    if not isinstance(bot, bool):
        raise _Invalid("bot", "must be true or false")
    if not isinstance(degraded, bool):
        raise _Invalid("degraded", "must be true or false")
    t = _texts(d)
    get = t.get
    ev = Event(
        t["event_id"],
        kind,
        t["user"],
        _int(d, "ts", MIN_TS_MS, MAX_TS_MS, 0),
        get("item", ""),
        get("category", ""),
        _price(d) if "price" in d else 0.0,
        _int(d, "qty", 1, MAX_QTY, 1) if "qty" in d else 1,
        get("session", ""),
        get("experiment", ""),
        get("variant", ""),
        get("traceparent", ""),
        bot,
        _int(d, "position", 0, MAX_POSITION, 0) if "position" in d else None,
        get("anon", ""),
        degraded,
    )
    if kind in ITEM_TYPES and not ev.item:
        raise _Invalid("item", f"is required for {kind}")
    if kind == "exposure" and not (ev.experiment and ev.variant):
        raise _Invalid("experiment" if not ev.experiment else "variant", "required for exposure")
    if (kind == "identify") != bool(ev.anon):
        raise _Invalid("anon", "is required for identify" if ev.anon == "" else "identify only")
    if ev.anon and ev.anon == ev.user:
        raise _Invalid(SIGNS_IN_AS_ITSELF.field, SIGNS_IN_AS_ITSELF.problem)
    return ev


def validate(doc: Any) -> Event | Rejection:
    """A decoded JSON or msgpack document -> the event, or the precise reason it is invalid."""
    try:
        return _build(_check_shape(doc))
    except _Invalid as exc:
        return exc.rejection


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Event)}


# version_of, newest version first: the fields it added to the major (with their defaults)
# and the fields its predecessor has narrower (with the predecessor's test). No memo: one
# keyed by what it reads was keyed by shopper and thrashed past a few thousand shoppers.
_STEPS = tuple(
    (v, tuple((n, _DEFAULTS[n]) for n in sorted(VERSIONS[v].names - VERSIONS[prev].names)),
     tuple((n, fits(f)) for n, f in VERSIONS[prev].fields.items() if VERSIONS[v].fields[n] != f))
    for prev, v in reversed(list(itertools.pairwise(_WRITABLE)))
)  # fmt: skip


def version_of(ev: Event) -> int:
    """The oldest version that carries ``ev``: what writers put on the stream and on disk."""
    for v, added, widened in _STEPS:
        for name, default in added:
            if getattr(ev, name) != default:
                return v
        for name, ok in widened:
            if not ok(getattr(ev, name)):
                return v
    return _WRITABLE[0]


_OPTIONAL_TEXTS = ("item", "category", "session", "experiment", "variant", "traceparent", "anon")
_optional_texts = operator.attrgetter(*_OPTIONAL_TEXTS)


def to_doc(ev: Event) -> dict[str, Any]:
    """The document of an event in ``version_of(ev)`` (defaults omitted); ``validate`` reads
    it back."""
    doc: dict[str, Any] = {
        "v": 0,  # set below, once the fields are known
        "event_id": ev.event_id,
        "type": ev.type,
        "user": ev.user,
        "ts": ev.ts,
    }
    for name, value in zip(_OPTIONAL_TEXTS, _optional_texts(ev), strict=True):
        if value:
            doc[name] = value
    if ev.price:
        doc["price"] = ev.price
    if ev.qty != 1:
        doc["qty"] = ev.qty
    if ev.bot:
        doc["bot"] = True
    if ev.degraded:
        doc["degraded"] = True
    if ev.position is not None:
        doc["position"] = ev.position
    doc["v"] = version_of(ev)
    return doc


def encode(ev: Event) -> bytes:
    """msgpack of the event's document: the stream entry's ``e`` field."""
    return msgpack.packb(to_doc(ev))


def decode(raw: bytes) -> Event | Rejection:
    """A stream entry's bytes -> the event, or why they are not one."""
    try:
        doc = msgpack.unpackb(raw, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        return Rejection("$", f"not msgpack: {type(exc).__name__}")
    return validate(doc)
