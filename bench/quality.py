"""Recommendation quality on the simulated shop: ``p13n evaluate`` on a grocery-like and a
fashion-like history, each route beside its baselines computed in the same run.

1. ``ops.shop.history`` writes both events files (same seed, same files).
2. For each, the evaluation replays the history into a throwaway Redis with the real
   processor and asks the real origin ranking for every shopper's held-out last basket.
3. Baselines, same run, same split: global popularity, the shopper's own items by purchase
   frequency then recency (``reorder``), item co-occurrence (raw counts).
4. The grocery shop's ceiling (``ops.shop.history.grocery_ceiling``): recall of an oracle that
   knows each shopper's hidden habits (liked categories, staples, cycles, due days) and ranks
   by the chance of each item to be in the last basket; beside it the reorder baseline on the
   same baskets. No model of the history does better, so ``grocery_ceiling_ratio`` bounds
   every ``*_ratio`` on this shop (measured: 1.05 on the default shape, seed 11; 1.17 with
   ``--days 60 --items 6000``).

Targets (issue 17): grocery home recall >= reorder, buy-again >= 1.10 x reorder; fashion home
above co-occurrence and popularity. Last line::

    grocery_home_recall=… grocery_reorder_recall=… grocery_ratio=<home/reorder>
    grocery_buy_again_ratio=<buy-again/reorder> grocery_ceiling_recall=…
    grocery_ceiling_ratio=<ceiling/reorder> fashion_home_recall=…
    fashion_cooccurrence_recall=… fashion_popularity_recall=…
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

# Run as `python bench/quality.py`, this folder comes first on sys.path and bench/origin.py
# would shadow the origin package: drop it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from ops.evaluate import evaluate  # noqa: E402
from ops.evaluate.metrics import Progress  # noqa: E402
from ops.shop.history import HistoryShape, grocery_ceiling, write  # noqa: E402

_DEFAULT = HistoryShape()


def _ceiling(shape: HistoryShape, k: int) -> dict[str, float]:
    """The grocery shop's ceiling figures (see the module docstring)."""
    print("grocery ceiling: drawing each shopper's last basket from their habits",
          file=sys.stderr, flush=True)  # fmt: skip
    c = grocery_ceiling(shape, k)
    print(f"ceiling recall={c.recall:.4f} reorder_recall={c.reorder_recall:.4f} "
          f"ratio={c.recall / (c.reorder_recall or 1.0):.4f} shoppers={c.shoppers}")  # fmt: skip
    return {"grocery_ceiling_recall": c.recall,
            "grocery_ceiling_ratio": c.recall / (c.reorder_recall or 1.0)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shoppers", type=int, default=_DEFAULT.shoppers)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--seed", type=int, default=_DEFAULT.seed)
    ap.add_argument("--days", type=int, default=_DEFAULT.days)
    ap.add_argument("--items", type=int, default=_DEFAULT.items)
    args = ap.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="p13n-quality-") as tmp:
        for kind in ("grocery", "fashion"):
            path = Path(tmp) / f"{kind}.jsonl"
            shape = HistoryShape(args.shoppers, args.items, args.days, args.seed)
            events = write(path, kind, shape)
            report = asyncio.run(evaluate(path, args.k, progress=Progress(sys.stderr, 15)))
            print(f"\n{kind}: {events} events, k={args.k}\n{report.table}\n{report.line}")
            rows = report.rows
            reorder = rows["reorder"].recall or 1.0
            for name, s in rows.items():
                figures[f"{kind}_{name.replace('-', '_')}_recall"] = s.recall
            figures[f"{kind}_ratio"] = rows["home"].recall / reorder
            figures[f"{kind}_buy_again_ratio"] = rows["buy-again"].recall / reorder
            figures[f"{kind}_degraded"] = report.degraded
            if kind == "grocery":
                figures.update(_ceiling(shape, args.k))
    print()
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in figures.items()))  # fmt: skip


if __name__ == "__main__":
    main()
