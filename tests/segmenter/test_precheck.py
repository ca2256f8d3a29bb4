"""The compiled fast path accepts only what the full checks accept, with the same fields:
every other document is left to ``event.validate`` (whose reasons the importer keeps)."""

from __future__ import annotations

import math

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.imports.parse import ParseConfig, check
from segmenter import event
from segmenter.event import Event
from segmenter.precheck import Precheck
from segmenter.shoppers import ShopperIds

ANON = "Q2hv0sZ9kP1fX7aLm3Tq_w"
NOW_MS = 1_700_000_000_000
CFG = ParseConfig("jsonl", (), "d" * 32, ShopperIds(), 8, NOW_MS)
BASE = {"v": 1, "event_id": "e1", "type": "view", "user": "cust_1", "item": "sku-1",
        "category": "c1", "price": 9.5, "ts": NOW_MS - 1000, "session": "s1"}  # fmt: skip
ODD = [None, True, False, 0, 1, -1, 1.0, 2.5, math.nan, math.inf, -0.0, 10**20, "", " ",
       "a b", "x" * 65, "é", "cust.1", "c:1", ANON, "identify", "exposure", "purchase",
       "search", [], ["sku-1"], {}, NOW_MS, NOW_MS + 1, float(NOW_MS - 5), 946_684_799_999,
       2, 3, 99]  # fmt: skip
KEYS = [*BASE, "qty", "bot", "position", "experiment", "variant", "anon", "traceparent",
        "degraded", "x"]  # fmt: skip


@st.composite
def documents(draw: st.DrawFn) -> dict[str, object]:
    doc: dict[str, object] = dict(BASE)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(KEYS))
        if draw(st.booleans()) and key in doc and key != "v":
            del doc[key]
        else:
            doc[key] = draw(st.sampled_from([*ODD, BASE.get(key, "v1")]))
    return doc


PRE = Precheck(CFG.skew_limit_ms)


@settings(max_examples=1500, deadline=None)
@given(doc=documents())
def test_accepts_only_what_the_full_checks_accept(doc: dict[str, object]) -> None:
    for _ in range(2):  # before and after the full checks let it learn the document's user
        full = check(CFG, doc)
        fast = PRE.accept(doc)
        if fast is not None:
            assert isinstance(full, Event), (doc, full)
            assert fast == (full.event_id, full.type, full.user, full.ts, full.session)
        if isinstance(full, Event):
            PRE.learn(doc)


DECODER = Precheck()


@settings(max_examples=1500, deadline=None)
@given(doc=documents())
def test_the_processor_decodes_what_the_full_checks_decode(doc: dict[str, object]) -> None:
    """The processor's stream decoder: the same event, or the same rejection, either way."""
    try:
        raw = msgpack.packb(doc)
    except OverflowError:  # 10**20: no stream entry can hold it
        raw = None
    for _ in range(2):  # before and after it learned the document's user
        if raw is not None:
            assert DECODER.decode(raw) == event.decode(raw)
        elif isinstance(event.validate(doc), Event):
            DECODER.learn(doc)
        fast = DECODER.event_of(doc)
        assert fast is None or fast == event.validate(doc)
    assert DECODER.decode(b"\xc1") == event.decode(b"\xc1")  # not msgpack: same reason


def test_the_common_shape_takes_the_fast_path_once_its_user_is_known() -> None:
    pre = Precheck(CFG.skew_limit_ms)
    assert pre.accept(dict(BASE)) is None  # an unseen user: the full path first
    assert isinstance(check(CFG, dict(BASE)), Event)
    pre.learn(dict(BASE))
    other = {**BASE, "event_id": "e2", "item": "sku-2", "session": "s9"}
    assert pre.accept(other) == ("e2", "view", "cust_1", BASE["ts"], "s9")
    assert pre.accept({**other, "ts": NOW_MS + 1}) is None  # beyond the clock skew
    assert pre.accept({**other, "type": "identify", "anon": ANON}) is None
