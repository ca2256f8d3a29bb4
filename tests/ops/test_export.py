"""``p13n export training``: features as they stood just before each event, never later."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb

from segmenter import lake
from segmenter.aggregates import Entry
from segmenter.archive import ArchiveWriter
from segmenter.event import Event

T0 = 1_700_000_000_000
MIN = 60_000


def _ev(i: int, kind: str, ts: int, item: str = "", user: str = "shopper-1", seq: int = 0,
        **kw) -> Entry:  # fmt: skip
    ev = Event(f"e{i}", kind, user, ts, item=item, category="grocery" if item else "",
               session="s1", **kw)  # fmt: skip
    return Entry(f"{ts}-{seq or i}", b"", ev)


def _p13n(*argv: str) -> subprocess.CompletedProcess[str]:
    # A test's export: the public dev segment key is fine (P13N_TRUSTED_LOCAL=1).
    env = {**os.environ, "P13N_TRUSTED_LOCAL": "1"}
    return subprocess.run([sys.executable, "-m", "ops.cli", *argv], capture_output=True,
                          text=True, timeout=60, check=False, env=env)  # fmt: skip


def test_examples_carry_the_features_before_their_event(tmp_path) -> None:
    entries = [
        _ev(1, "view", T0, "sku-a"),
        _ev(2, "add_to_cart", T0 + 1 * MIN, "sku-a", qty=2),
        _ev(3, "purchase", T0 + 2 * MIN, "sku-a", price=4.0, qty=2),
        _ev(4, "view", T0 + 3 * MIN, "sku-b", position=2),
        _ev(5, "view", T0 + 4 * MIN, "sku-a"),
        _ev(5, "view", T0 + 4 * MIN + 1, "sku-a", seq=55),  # a client retry: one example
        _ev(6, "purchase", T0 + 90 * MIN, "sku-a", price=4.0),
        _ev(7, "purchase", T0 + 9 * 60 * MIN, "sku-b", price=1.0),  # after --to: features only
        _ev(8, "view", T0 + 5 * MIN, "sku-c", user="shopper-2"),
        _ev(9, "purchase", T0 + 26 * 60 * MIN, "sku-c", user="shopper-2"),  # over 24 h later
    ]
    ArchiveWriter(tmp_path).append(0, sorted(entries, key=lambda e: e.key))
    lake.sync(tmp_path)
    out = tmp_path / "train.parquet"
    args = ("--from", str(T0 + 1 * MIN), "--to", str(T0 + 8 * 60 * MIN), "--out", str(out),
            "--archive-dir", str(tmp_path))  # fmt: skip
    done = _p13n("export", "training", *args)
    assert done.returncode == 0, done.stderr
    assert "exported 6 examples of 2 shoppers" in done.stdout
    rows = duckdb.sql(
        f"SELECT stream_id, type, item, position, f_events, f_orders, f_cart_items, "
        f"f_item_recent_rank, f_item_in_cart, f_item_bought, f_since_last_ms, purchased_24h "
        f"FROM read_parquet('{out}') WHERE user = 'shopper-1' ORDER BY ts"
    ).fetchall()
    assert rows == [
        # the view at T0 is before --from: it shapes features, it is no example
        (f"{T0 + MIN}-2", "add_to_cart", "sku-a", None, 1, 0, 0, 0, 0, 0, MIN, True),
        (f"{T0 + 2 * MIN}-3", "purchase", "sku-a", None, 2, 0, 2, 0, 2, 0, MIN, True),
        # bought 9 h later, after --to: the label looks ahead, the features never do
        (f"{T0 + 3 * MIN}-4", "view", "sku-b", 2, 3, 1, 0, None, 0, 0, MIN, True),
        (f"{T0 + 4 * MIN}-5", "view", "sku-a", None, 4, 1, 0, 1, 0, 2, MIN, True),  # 2 units
        (f"{T0 + 90 * MIN}-6", "purchase", "sku-a", None, 5, 1, 0, 0, 0, 2, 86 * MIN, True),
    ]  # fmt: skip
    (seg,) = duckdb.sql(f"SELECT DISTINCT f_segment FROM read_parquet('{out}') "
                        f"WHERE stream_id = '{T0 + MIN}-2'").fetchall()  # fmt: skip
    assert seg[0]  # the segment the shopper was in then
    other = duckdb.sql(f"SELECT f_events, purchased_24h FROM read_parquet('{out}') "
                       f"WHERE user = 'shopper-2'").fetchall()  # fmt: skip
    assert other == [(0, False)]


def test_export_usage(tmp_path) -> None:
    bad = _p13n("export", "training", "--from", "2024-02-01", "--to", "2024-01-01",
                "--archive-dir", str(tmp_path))  # fmt: skip
    assert bad.returncode == 2 and "--from" in bad.stderr
    wrong = _p13n("export", "training", "--from", "2024-01-01", "--to", "2024-02-01",
                  "--out", str(tmp_path / "x.csv"), "--archive-dir", str(tmp_path))  # fmt: skip
    assert wrong.returncode == 2 and ".parquet" in wrong.stderr
