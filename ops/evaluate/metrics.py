"""Ranking metrics at k, the table and the last line, and the progress bar on stderr.

recall@k    |top k ∩ basket| / |basket|, averaged over shoppers
hit rate@k  share of shoppers with at least one basket item in the top k
NDCG@k      binary relevance, ideal = min(k, |basket|) hits at the top
coverage    distinct items recommended / distinct items in the history
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Progress", "Scores", "last_line", "score", "table"]


@dataclass(frozen=True, slots=True)
class Scores:
    """One model's figures."""

    recall: float
    hit_rate: float
    ndcg: float
    coverage: float
    shoppers: int


def _ndcg(recs: Sequence[str], basket: frozenset[str], k: int) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, item in enumerate(recs[:k]) if item in basket)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(basket))))
    return dcg / ideal if ideal else 0.0


def score(
    recs: Mapping[str, Sequence[str]], held_out: Mapping[str, frozenset[str]], k: int,
    catalog_size: int,
) -> Scores:  # fmt: skip
    """The figures of one model over every held-out shopper (no answer counts as a miss)."""
    recall = hits = ndcg = 0.0
    shown: set[str] = set()
    for user, basket in held_out.items():
        top = list(recs.get(user, ()))[:k]
        shown.update(top)
        found = len(basket.intersection(top))
        recall += found / len(basket)
        hits += found > 0
        ndcg += _ndcg(top, basket, k)
    n = max(1, len(held_out))
    return Scores(recall / n, hits / n, ndcg / n, len(shown) / max(1, catalog_size), len(held_out))


def table(rows: Mapping[str, Scores], k: int) -> str:
    """A fixed-width table, one row per model."""
    head = f"{'model':<24} {'recall@' + str(k):>10} {'hit@' + str(k):>8} {'ndcg@' + str(k):>9} "
    lines = [head + f"{'coverage':>9} {'shoppers':>9}"]
    for name, s in rows.items():
        lines.append(f"{name:<24} {s.recall:>10.3f} {s.hit_rate:>8.3f} {s.ndcg:>9.3f} "
                     f"{s.coverage:>9.3f} {s.shoppers:>9d}")  # fmt: skip
    return "\n".join(lines)


def last_line(rows: Mapping[str, Scores]) -> str:
    """``eval recall=… hr=… ndcg=… reorder_recall=… ratio=…`` (home against the reorder
    baseline), then every route's and baseline's recall."""
    home, base = rows["home"], rows["reorder"]
    ratio = home.recall / base.recall if base.recall else 0.0
    parts = [f"recall={home.recall:.4f}", f"hr={home.hit_rate:.4f}", f"ndcg={home.ndcg:.4f}",
             f"reorder_recall={base.recall:.4f}", f"ratio={ratio:.4f}"]  # fmt: skip
    for name, s in rows.items():
        if name in ("home", "reorder"):
            continue
        key = name.replace("-", "_")
        parts.append(f"{key}_recall={s.recall:.4f}")
        if name == "buy-again":
            parts.append(f"buy_again_ratio={s.recall / base.recall if base.recall else 0.0:.4f}")
    parts += [f"coverage={home.coverage:.4f}", f"shoppers={home.shoppers}"]
    return "eval " + " ".join(parts)


class Progress:
    """A bar on a terminal (redrawn in place), else a line every ``every_s`` seconds."""

    def __init__(self, out: TextIO, every_s: float = 5.0) -> None:
        self.out, self.every_s = out, every_s
        self.tty = out.isatty()
        self._last = float("-inf")  # the first call always prints

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        final = done >= total
        if not self.tty and not final and now - self._last < self.every_s:
            return
        self._last = now
        share = done / total if total else 1.0
        if self.tty:
            bar = "#" * int(share * 30)
            end = "\n" if final else ""
            self.out.write(f"\r{stage:<10} [{bar:<30}] {share:6.1%} {done}/{total}{end}")
        else:
            self.out.write(f"{stage}: {done}/{total} ({share:.0%})\n")
        self.out.flush()
