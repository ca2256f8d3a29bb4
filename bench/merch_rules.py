"""What merchandising rules cost the edge: one rail answer's rerank of 200 candidates into the
top 12, without rules and with five live ones (a pin, a category pin, a boost, a bury, a
block), which rank 60 candidates and apply ``cache_keys.wire.apply_rules``. Median of one
call over 20,000 calls after warm-up, both measured in the same run, interleaved.

Last line: rerank_us=<p50 without rules> with_rules_us=<p50 with rules> ratio=<with/without>
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

# Run as `python bench/merch_rules.py`, this file's folder comes first on sys.path and
# bench/edge.py would shadow the `edge` package.
if __name__ == "__main__":
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from cache_keys.wire import ListItem, MerchRule, Row, apply_rules, pool_size
from edge.rerank import rerank

CALLS = 20_000
WARMUP = 2_000
K = 12
ITEMS = tuple(
    ListItem(item=f"SKU-{i:04d}", score=1.0 - i / 400, category=f"cat-{i % 12}", price=1.0 + i % 9)
    for i in range(200)
)
RULES = (
    MerchRule("brand-deal", "pin", skus=("SKU-0150",), position=1),
    MerchRule("bread-first", "pin", category="cat-3", position=3),
    MerchRule("push-tea", "boost", category="cat-5", factor=2.0),
    MerchRule("less-cat-7", "bury", category="cat-7", factor=0.5),
    MerchRule("recall", "block", skus=("SKU-0001", "SKU-0013")),
)
CATEGORY = {it.item: it.category for it in ITEMS}


def plain() -> object:
    return rerank(ITEMS, None, k=K, category_cap=3, weights={}, mask=frozenset())


def with_rules() -> object:
    ranked = rerank(ITEMS, None, k=pool_size(K, RULES), category_cap=3, weights={},
                    mask=frozenset())  # fmt: skip
    rows = [Row(r.item, r.score, r.reason, CATEGORY[r.item]) for r in ranked]
    return apply_rules(rows, RULES, k=K, excluded=frozenset())


def main() -> None:
    timings: dict[str, list[float]] = {"plain": [], "rules": []}
    for i in range(WARMUP + CALLS):
        for name, fn in (("plain", plain), ("rules", with_rules)):
            t0 = time.perf_counter()
            fn()
            if i >= WARMUP:
                timings[name].append(time.perf_counter() - t0)
    base = statistics.median(timings["plain"]) * 1e6
    rules = statistics.median(timings["rules"]) * 1e6
    print(f"rerank_us={base:.2f} with_rules_us={rules:.2f} ratio={rules / base:.2f}")


if __name__ == "__main__":
    main()
