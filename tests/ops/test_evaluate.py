"""``p13n evaluate``: the split, the metrics, the baselines, and a whole run on a real store."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

from cache_keys.wire import parse_segment_list
from ops.evaluate import evaluate
from ops.evaluate.data import EventsFileError, baselines, read_events, split
from ops.evaluate.metrics import Progress, score
from ops.evaluate.replay import Store
from ops.shop.history import GROCERY_CATEGORIES, HistoryShape, write
from segmenter.event import Event


def _ev(n: int, kind: str, user: str, item: str, ts: int, session: str) -> Event:
    return Event(f"e{n}", kind, user, ts, item=item, category="dairy", price=1.0, session=session)


HISTORY = [
    _ev(1, "purchase", "u", "milk", 1_000, "s1"),
    _ev(2, "purchase", "u", "eggs", 1_001, "s1"),
    _ev(3, "purchase", "u", "milk", 5_000, "s2"),
    _ev(4, "view", "u", "cake", 9_000, "s3"),
    _ev(5, "purchase", "u", "milk", 9_500, "s3"),
    _ev(6, "purchase", "u", "jam", 9_600, "s3"),
    _ev(7, "purchase", "v", "jam", 2_000, "t1"),  # one basket only: nothing to learn from
]


def test_last_basket_holds_out_the_whole_last_session() -> None:
    s = split(HISTORY, "last-basket")
    assert s.held_out == {"u": frozenset({"milk", "jam"})}
    assert s.cut_ms == {"u": 9_000}  # the session's first event: its view is not known either
    assert [e.event_id for e in s.history] == ["e1", "e2", "e3", "e7"]


def test_time_split_holds_out_everything_after_the_cut() -> None:
    s = split(HISTORY, "time")
    assert set(s.held_out) == {"u"} and all(e.ts < s.cut_ms["u"] for e in s.history)


def test_baselines_from_the_history_only() -> None:
    b = baselines(split(HISTORY, "last-basket"), k=2)
    assert b["reorder"]["u"] == ["milk", "eggs"]  # twice, then once
    assert b["popularity"]["u"] == ["milk", "eggs"]
    assert b["cooccurrence"]["u"] == ["eggs", "milk"]  # each bought with the other once


def test_metrics_at_k() -> None:
    held = {"a": frozenset({"x", "y"}), "b": frozenset({"z"})}
    s = score({"a": ["x", "q"], "b": ["q", "r"]}, held, k=2, catalog_size=10)
    assert (s.recall, s.hit_rate, s.coverage) == (0.25, 0.5, 0.3)
    assert s.ndcg == pytest.approx((1 / (1 + 1 / 1.5849625007211562)) / 2)


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = {"v": 1, "event_id": "a", "type": "purchase", "user": "u", "item": "i", "ts": 10**12}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "type": "buy"}) + "\n")
    with pytest.raises(EventsFileError, match=r"events.jsonl:2: type"):
        read_events(path)


def test_progress_without_a_terminal_prints_lines() -> None:
    out = io.StringIO()
    p = Progress(out, every_s=3600)
    for n in range(1, 11):
        p("write", n, 10)
    assert out.getvalue().splitlines() == ["write: 1/10 (10%)", "write: 10/10 (100%)"]


def test_a_whole_evaluation_on_a_small_grocery_shop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "grocery.jsonl"
    write(path, "grocery", HistoryShape(shoppers=25, items=300, days=60, seed=3))
    listed: list[str] = []
    ask = Store.ask

    async def asked(self: Store, *args: Any) -> dict[str, dict[str, list[str]]]:
        raw = await self.r.get(self.keys.popular_list)
        listed.extend(li.category for li in parse_segment_list(msgpack.unpackb(raw)).items)
        return await ask(self, *args)

    monkeypatch.setattr(Store, "ask", asked)
    report = asyncio.run(evaluate(path, k=10, progress=lambda *_: None))
    # the lists the origin ranks from were built with the catalog in: they know categories
    assert listed and all(cat in GROCERY_CATEGORIES for cat in listed)
    assert set(report.rows) == {"home", "buy-again", "popularity", "reorder", "cooccurrence"}
    # every shopper with a basket before the last one is scored (some joined too late)
    assert report.rows["home"].shoppers >= 20
    assert report.degraded == 0
    # the origin answered from what the processor stored: the shoppers' own staples come back
    assert report.rows["buy-again"].recall > report.rows["popularity"].recall
    assert report.line.startswith("eval recall=") and " ratio=" in report.line
    # what the list build measured: grocery shoppers repeat themselves; 25 shoppers are too
    # few to learn whether recent baskets weigh more
    assert report.repeat_share is not None and 0.2 < report.repeat_share < 0.8
    assert report.recent_weight is None
    assert report.shop.startswith(f"shop: repeat share {report.repeat_share:.2f}, recent weight")
    assert "not learned" in report.shop
