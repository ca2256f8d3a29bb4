"""The demo's verdict: the hard purge is the purge that counts; no freshness figure fails."""

from __future__ import annotations

import math

from ops.report import judge, purge_ms

COUNTS = {"applied": 100, "duplicate": 0, "late": 0, "dead": 3, "dlq": 3}
BOTH = {"stock-out SKU-1": 40.0, "hard purge SKU-2": 75.0}


def test_purge_ms_is_the_hard_purges_time_not_the_quickest_purge() -> None:
    assert purge_ms(BOTH) == 75.0
    assert purge_ms(BOTH, "stock-out") == 40.0


def test_the_verdict_needs_the_hard_purge_seen_at_the_edge() -> None:
    assert judge(COUNTS, [10, 12], BOTH, 0.05, 3) == []
    stock_out_only = {"stock-out SKU-1": 40.0}
    never_seen = {"stock-out SKU-1": 40.0, "hard purge SKU-2": math.inf}
    for purges in (stock_out_only, never_seen, {}):
        assert purge_ms(purges) is None
        assert judge(COUNTS, [10, 12], purges, 0.05, 3) == [
            "the hard purge was never seen at the edge"
        ]


def test_a_missing_freshness_measurement_fails_the_verdict() -> None:
    assert judge(COUNTS, [10, 12], BOTH, None, 3) == ["no event-to-feature freshness measured"]
