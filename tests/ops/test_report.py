"""The demo's verdict: the hard purge is the purge that counts; no freshness figure fails."""

from __future__ import annotations

import math

from ops.report import Observed, judge, purge_ms, verdict
from ops.simulate import Run

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


def test_the_summary_is_built_from_the_figures_alone() -> None:
    run = Run(purges=dict(BOTH), events_sent=50, malformed_sent=3)
    for ms in (4.0, 6.0, 8.0):
        run.record("hit", ms)
    run.record("miss", 30.0)
    results = {"variants": [{"variant": "control", "exposures": 10, "conversions": 1},
                            {"variant": "boost", "exposures": 12, "conversions": 2}],
               "srm": {"p_value": 0.6, "mismatch": False}}  # fmt: skip
    out = verdict(run, Observed(COUNTS, 0.05, results))
    assert out.ok and out.last_line.startswith("demo ok edge_hit_ratio=0.750 ")
    assert "freshness_p99_ms=50 purge_ms=75 dlq=3" in out.last_line
    assert any(line.startswith("  hit ") and " 3  p50=" in line for line in out.lines)
    assert "  hard purge SKU-2: 75 ms" in out.lines
    failed = verdict(run, Observed({**COUNTS, "dlq": 1}, 0.05, results))
    assert not failed.ok and "dlq=1 but 3 malformed were injected" in failed.last_line


def test_a_runs_figures_are_the_difference_from_its_own_start() -> None:
    results = {"variants": [{"variant": "control", "exposures": 10, "conversions": 1},
                            {"variant": "boost", "exposures": 12, "conversions": 2}]}  # fmt: skip
    before = Observed(dict(COUNTS), 0.05, results, {0.1: 90.0, 1.0: 100.0, math.inf: 100.0})
    later = {"variants": [{"variant": "control", "exposures": 30, "conversions": 5},
                          {"variant": "boost", "exposures": 32, "conversions": 2}]}  # fmt: skip
    after = Observed({**COUNTS, "applied": 160, "dlq": 5}, 0.5, later,
                     {0.1: 90.0, 1.0: 200.0, math.inf: 200.0})  # fmt: skip
    run = after.since(before)
    assert run.counts["applied"] == 60 and run.counts["dlq"] == 2
    # Every one of this run's 100 observations fell in (0.1, 1.0]: its p99 is in there too.
    assert run.fresh_s is not None and 0.1 < run.fresh_s <= 1.0
    assert [(v["exposures"], v["conversions"]) for v in run.results["variants"]] == [
        (20, 4), (20, 0)]  # fmt: skip
    assert run.results["variants"][0]["conversion_rate"] == 0.2
    # A counter that went down (a DLQ drop, a restarted part) counts from zero.
    dropped = Observed({**COUNTS, "dlq": 1}, 0.05, results).since(before)
    assert dropped.counts["dlq"] == 1
    assert after.since(None) is after


def test_an_interrupted_run_still_has_its_summary_and_says_why_it_failed() -> None:
    run = Run(purges=dict(BOTH), events_sent=5, malformed_sent=3, interrupted="interrupted")
    run.record("hit", 4.0)
    results = {"variants": [{"variant": "control", "exposures": 1, "conversions": 0},
                            {"variant": "boost", "exposures": 1, "conversions": 0}]}  # fmt: skip
    out = verdict(run, Observed(COUNTS, 0.05, results))
    assert not out.ok and out.last_line.startswith("demo FAILED the run ended early (interrupted)")
    assert any(line.startswith("  hit ") for line in out.lines)
