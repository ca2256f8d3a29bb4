"""Event schema v1: one record, one validation step, one msgpack encode/decode pair.

    {"v": 1, "event_id": "e1", "type": "view", "user": "u1", "item": "sku-1", "ts": 1.7e12}
        -> Event(event_id="e1", type="view", user="u1", ts=1700000000000, item="sku-1", …)
    {"v": 2, …} -> Rejection(field="v", problem="unsupported version 2; this build reads 1")

``user`` is a shopper id of either kind (``segmenter.shoppers``: the anonymous id or the shop's
customer id); here only its envelope is checked, the ingress points check the kind. An
``identify`` event links an anonymous shopper to the customer they signed in as: ``user`` is
the customer, ``anon`` the anonymous id (the processor merges the anonymous features into the
customer's, exactly once: ``segmenter.features``).

JSON arrives at the collector; msgpack of the same field names travels on the streams. A
consumer that meets any other version parks the entry in the dead-letter stream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

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
]

VERSION = 1
EVENT_TYPES = (
    "view", "add_to_cart", "remove_from_cart", "purchase", "search", "exposure", "identify",
)  # fmt: skip
# Types that are about one item, so ``item`` is required.
ITEM_TYPES = frozenset({"view", "add_to_cart", "remove_from_cart", "purchase"})
MIN_TS_MS = 946_684_800_000  # 2000-01-01
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01
MAX_PRICE = 1_000_000.0
MAX_QTY = 1000

EVENT_ID_RE = re.compile(r"[\x21-\x7e]{1,64}")
# Every shopper id, anonymous or customer, fits this envelope (no "|", "{", "}" or spaces:
# ids go into hash tags and "user|session" fields).
USER_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ITEM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
SESSION_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
TRACEPARENT_RE = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

TEXT_FIELDS: dict[str, re.Pattern[str]] = {
    "event_id": EVENT_ID_RE,
    "user": USER_RE,
    "anon": USER_RE,
    "item": ITEM_RE,
    "category": ITEM_RE,
    "session": SESSION_RE,
    "experiment": SLUG_RE,
    "variant": SLUG_RE,
    "traceparent": TRACEPARENT_RE,
}
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
FIELDS = frozenset({"v", "type", "ts", "price", "qty", "bot", *TEXT_FIELDS})
REQUIRED = ("event_id", "type", "user", "ts")
_REQUIRED_SET = frozenset(REQUIRED)
# Text values already seen to match their pattern, for the fields whose values repeat
# (shoppers, items, sessions…): a set lookup instead of a regex; bounded, emptied when full.
_KNOWN: dict[str, set[str]] = {
    name: set() for name in ("user", "anon", "item", "category", "session", "experiment", "variant")
}
_KNOWN_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Event:
    """One valid v1 event (absent optional text fields are empty strings)."""

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
    anon: str = ""  # identify only: the anonymous id signing in as ``user``


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input is not a valid event: the field at fault and the problem."""

    field: str
    problem: str

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.problem}"


class _Invalid(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.rejection = Rejection(field, problem)


def _int(d: Mapping[str, Any], name: str, lo: int, hi: int, default: int) -> int:
    value = d.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
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


def _check_shape(doc: Any) -> Mapping[str, Any]:
    if type(doc) is not dict and not isinstance(doc, Mapping):
        raise _Invalid("$", "an event must be an object")
    if type(doc.get("v")) is not int or doc.get("v") != VERSION:  # not True, not 1.0
        raise _Invalid("v", f"unsupported version {doc.get('v')!r}; this build reads {VERSION}")
    if not FIELDS.issuperset(doc):
        unknown = [k for k in doc if k not in FIELDS]
        # The name goes into the reason, not the field: fields become metric labels, and a
        # client's made-up key (an e-mail address, 200 kB of text) must not.
        raise _Invalid("$", f"unknown field {str(unknown[0])[:64]!r}")
    if not _REQUIRED_SET.issubset(doc):
        name = next(n for n in REQUIRED if n not in doc)
        raise _Invalid(name, "is required")
    if doc["type"] not in EVENT_TYPES:
        raise _Invalid("type", f"must be one of {', '.join(EVENT_TYPES)}")
    return doc


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
    bot = d.get("bot", False)
    if not isinstance(bot, bool):
        raise _Invalid("bot", "must be true or false")
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
        get("anon", ""),
    )
    if kind in ITEM_TYPES and not ev.item:
        raise _Invalid("item", f"is required for {kind}")
    if kind == "exposure" and not (ev.experiment and ev.variant):
        raise _Invalid("experiment" if not ev.experiment else "variant", "required for exposure")
    if (kind == "identify") != bool(ev.anon):
        raise _Invalid("anon", "is required for identify" if ev.anon == "" else "identify only")
    if ev.anon and ev.anon == ev.user:
        raise _Invalid("anon", "must differ from user")
    return ev


def validate(doc: Any) -> Event | Rejection:
    """A decoded JSON or msgpack document -> the event, or the precise reason it is invalid."""
    try:
        return _build(_check_shape(doc))
    except _Invalid as exc:
        return exc.rejection


def to_doc(ev: Event) -> dict[str, Any]:
    """The v1 document of an event (defaults omitted); ``validate`` reads it back."""
    doc: dict[str, Any] = {
        "v": VERSION,
        "event_id": ev.event_id,
        "type": ev.type,
        "user": ev.user,
        "ts": ev.ts,
    }
    for name in ("item", "category", "session", "experiment", "variant", "traceparent", "anon"):
        value = getattr(ev, name)
        if value:
            doc[name] = value
    if ev.price:
        doc["price"] = ev.price
    if ev.qty != 1:
        doc["qty"] = ev.qty
    if ev.bot:
        doc["bot"] = True
    return doc


def encode(ev: Event) -> bytes:
    """msgpack of the v1 document: the stream entry's ``e`` field."""
    return msgpack.packb(to_doc(ev))


def decode(raw: bytes) -> Event | Rejection:
    """A stream entry's bytes -> the event, or why they are not one."""
    try:
        doc = msgpack.unpackb(raw, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        return Rejection("$", f"not msgpack: {type(exc).__name__}")
    return validate(doc)
