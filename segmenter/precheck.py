"""A compiled, accept-only check of event documents, for bulk paths (``p13n import events``,
the processor's stream reads).

``event.validate`` is generic: every field of every document goes through the registry's
rules. A history file repeats one document shape and a few thousand shoppers, items and
sessions, so ``Precheck`` compiles a plan per shape (key order and version) once:

    ("v", "event_id", "type", "user", "item", "category", "price", "ts", "session"), v=1
        -> text fields checked by character set, users by set membership, ts/price by
           type and bounds, and the types the shape can carry ({"view", "add_to_cart", ...}:
           item present, no experiment)

and then answers per document ``(event_id, type, user, ts, session)`` or ``None``. It never
decides a rejection: ``None`` means "ask ``validate``" (and the caller's other checks), so
every reason stays exactly the collector's. A user is accepted only once the caller has seen
it pass the full checks in the same version (``learn``: the shopper-id policy is the
caller's); identify events, traceparents and whatever is not an exact ``int`` or ``float``
always take the full path. tests/segmenter/test_precheck.py holds it to ``validate`` on
valid and broken documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from segmenter import event
from segmenter.registry import VERSIONS

__all__ = ["Precheck"]

# Text fields checked by their character sets (``event._CHARSETS``, held to the patterns by
# tests/segmenter/test_event_charsets.py); ``user`` also depends on the caller's shopper-id
# policy, so only values the caller has seen pass are accepted; traceparent and anon (regex,
# identify) leave the fast path.
_CHARSET_FIELDS = ("event_id", "item", "category", "session", "experiment", "variant")
_INT_FIELDS = {
    "ts": (event.MIN_TS_MS, event.MAX_TS_MS),
    "qty": (1, event.MAX_QTY),
    "position": (0, event.MAX_POSITION),
}
# Users learned: ~90 B each, new ids arrive for as long as a shop runs; 200,000 took 30 h
# of one-visit ids to fill (the processor grew ~0.65 MB/h), the bound is the shopper cache's.
_LEARNED_MAX = 20_000


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one document shape needs checked."""

    texts: tuple[tuple[str, str, str, int], ...]
    users: set[str]
    ints: tuple[tuple[str, int, int], ...]
    price: bool
    bools: tuple[str, ...]
    types: frozenset[str]
    has_session: bool


class Precheck:
    """Accept-only fast path in front of ``event.validate`` (one per process and policy)."""

    def __init__(self, ts_limit_ms: int = event.MAX_TS_MS) -> None:
        self._plans: dict[tuple[Any, ...], _Plan | None] = {}
        self._learned: dict[tuple[int, str], set[str]] = {}
        self._ts_limit = min(ts_limit_ms, event.MAX_TS_MS)

    def _learned_set(self, v: int, name: str) -> set[str]:
        return self._learned.setdefault((v, name), set())

    def _compile(self, names: tuple[str, ...], v: Any) -> _Plan | None:
        if type(v) is not int or v not in event._WRITABLE:
            return None
        spec = VERSIONS[v]
        narrower = {n for n, _ in event._NARROWER[v]}
        keys = set(names)
        if (
            len(keys) != len(names)
            or not spec.names.issuperset(keys)
            or not event._REQUIRED_SET.issubset(keys)
            or keys & {"traceparent", "anon"}
            or narrower - {"type", "user"}  # only these two are widened by now
        ):
            return None
        types = set(spec.fields["type"].values) - {"identify"}
        if "item" not in keys:
            types -= event.ITEM_TYPES
        if not {"experiment", "variant"} <= keys:
            types.discard("exposure")
        ints = tuple(
            (n, lo, min(hi, self._ts_limit) if n == "ts" else hi)
            for n, (lo, hi) in _INT_FIELDS.items()
            if n in keys
        )
        return _Plan(
            texts=tuple((n, *event._CHARSETS[n]) for n in _CHARSET_FIELDS if n in keys),
            users=self._learned_set(v, "user"),
            ints=ints,
            price="price" in keys,
            bools=tuple(n for n in ("bot", "degraded") if n in keys),
            types=frozenset(types),
            has_session="session" in keys,
        )

    def _plan(self, doc: dict[str, Any]) -> _Plan | None:
        v = doc.get("v")
        shape = (tuple(doc), v, type(v))  # True == 1 and 1.0 == 1 as dict keys: not as versions
        try:
            return self._plans[shape]
        except KeyError:
            pass
        except TypeError:  # an unhashable "v": the full path says what is wrong
            return None
        if len(self._plans) > 1000:  # shapes are few; a file of random ones gains nothing
            self._plans.clear()
        plan = self._plans[shape] = self._compile(shape[0], v)
        return plan

    def accept(self, doc: dict[str, Any]) -> tuple[str, str, str, int, str] | None:
        """``(event_id, type, user, ts, session)`` when ``doc`` is certainly valid, else None."""
        plan = self._plan(doc)
        if plan is None:
            return None
        kind = doc["type"]
        if type(kind) is not str or kind not in plan.types:
            return None
        user = doc["user"]
        if type(user) is not str or user not in plan.users:
            return None
        for name, allowed, first, longest in plan.texts:
            value = doc[name]
            if (
                type(value) is not str
                or not 0 < len(value) <= longest
                or value.strip(allowed)
                or (first and value[0] not in first)
            ):
                return None
        for name, lo, hi in plan.ints:
            value = doc[name]
            if type(value) is not int or not lo <= value <= hi:
                return None
        if plan.price:
            price = doc["price"]
            if (type(price) is not float and type(price) is not int) or not (
                0.0 <= price <= event.MAX_PRICE
            ):
                return None
        for name in plan.bools:
            if type(doc[name]) is not bool:
                return None
        return doc["event_id"], kind, user, doc["ts"], doc["session"] if plan.has_session else ""

    def event_of(self, doc: dict[str, Any]) -> event.Event | None:
        """The event ``event.validate(doc)`` would return, when ``doc`` is certainly valid;
        else None."""
        hit = self.accept(doc)
        if hit is None:
            return None
        eid, kind, user, ts, session = hit
        get = doc.get
        price = get("price")
        return event.Event(
            eid, kind, user, ts, get("item", ""), get("category", ""),
            0.0 if price is None else float(price), get("qty", 1), session,
            get("experiment", ""), get("variant", ""), "", get("bot", False), get("position"),
            "", get("degraded", False),
        )  # fmt: skip

    def decode(self, raw: bytes) -> event.Event | event.Rejection:
        """``event.decode(raw)``, through the fast path when it accepts the document (the
        full path teaches it the users it passes)."""
        try:
            doc = msgpack.unpackb(raw, strict_map_key=True)
        except (ValueError, msgpack.UnpackException):
            return event.decode(raw)  # which words the rejection
        if type(doc) is dict:
            ev = self.event_of(doc)
            if ev is not None:
                return ev
        result = event.validate(doc)
        if type(result) is event.Event:
            self.learn(doc)
        return result

    def learn(self, doc: dict[str, Any]) -> None:
        """Remember the user of ``doc``, which passed every full check (the caller's too)."""
        v, user = doc.get("v"), doc.get("user")
        if type(v) is not int or v not in event._WRITABLE or doc.get("type") == "identify":
            return
        if type(user) is str:
            learned = self._learned_set(v, "user")
            if len(learned) >= _LEARNED_MAX:
                learned.clear()
            learned.add(user)
