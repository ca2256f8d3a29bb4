"""Simulated experiments through the results math (bench/ab_simulation.py, fewer runs).

Seeded, so each run is the same; the bounds are alpha (or the nominal coverage) plus three
binomial standard errors of the simulated share, so a method that really inflates false
positives or mis-states its intervals fails them.
"""

from __future__ import annotations

import math

from bench import ab_simulation as sim


def _margin(p: float, reps: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / reps)


def test_peeking_inflates_the_fixed_interval_but_not_the_sequential_one() -> None:
    reps = 300
    pk = sim.peeking(reps, seed=11)
    assert pk.sequential_any <= sim.ALPHA + _margin(sim.ALPHA, reps)
    # the same runs, read with the fixed-horizon interval at every look: the failure the
    # sequential method exists for (and proof the simulation can see it)
    assert pk.fixed_any > 3 * sim.ALPHA
    assert abs(pk.fixed_last - sim.ALPHA) <= _margin(sim.ALPHA, reps)


def test_holm_keeps_several_arms_at_alpha() -> None:
    reps = 500
    raw, holm = sim.several_arms(reps, seed=12)
    assert holm <= sim.ALPHA + _margin(sim.ALPHA, reps)
    assert raw > sim.ALPHA + _margin(sim.ALPHA, reps)  # uncorrected: about 1 - 0.95^3


def test_intervals_cover_the_true_difference() -> None:
    reps = 300
    cov = sim.coverage(reps, seed=13)
    for metric, share in cov.items():
        assert abs(share - 0.95) <= _margin(0.95, reps), (metric, share)
