"""Experiment results: statistics, per-variant figures, SRM, and the endpoint."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from cache_keys.experiments import effective_seed
from cache_keys.wire import Experiment, Variation
from origin.admin.results import summarize
from origin.admin.stats import chi2_sf, lift_ci, srm_p_value
from origin.assignment import assign
from tests.support import data
from tests.support.data import EXPER, bearer


@pytest.mark.parametrize(
    ("x", "df", "p"),
    [(3.841458820694124, 1, 0.05), (10.827566170662733, 1, 0.001), (5.991464547107979, 2, 0.05),
     (0.0, 3, 1.0), (30.0, 4, 4.894437e-06)],
)  # fmt: skip
def test_chi_square_tail_matches_tables(x, df, p):
    assert math.isclose(chi2_sf(x, df), p, rel_tol=1e-5)


def test_srm_flags_a_skewed_split_only():
    assert srm_p_value([5000, 5000], [0.5, 0.5]) == 1.0
    assert srm_p_value([5100, 4900], [0.5, 0.5]) > 0.001
    assert srm_p_value([5500, 4500], [0.5, 0.5]) < 0.001
    assert srm_p_value([0, 0], [0.5, 0.5]) is None


def test_lift_interval_brackets_the_estimate():
    lift, lo, hi = lift_ci(120, 1000, 100, 1000)
    assert math.isclose(lift, 0.2) and lo < 0.2 < hi and lo < 0 < hi  # not significant
    lift, lo, hi = lift_ci(2400, 20000, 2000, 20000)
    assert lo > 0  # significant at this size
    # no conversions in the treatment: -100% with an interval, not "no result"
    lift, lo, hi = lift_ci(0, 5000, 250, 5000)
    assert lift == -1.0 and -1 < lo < hi < -0.9


def test_summary_per_variant_with_baseline_subtracted():
    exp = {
        "key": "e",
        "bucket_version": 1,
        "results_from_ms": 5,
        "weights": [0.5, 0.5],
        "variations": [{"name": "control"}, {"name": "boost"}],
        "results_baseline": {"x:control": 100, "c:control": 10},
    }
    # revenue in integer cents, as the processor keeps it
    counts = {"x:control": 1100, "c:control": 110, "r:control": 500000, "o:control": 100,
              "x:boost": 1000, "c:boost": 150, "r:boost": 900000, "o:boost": 150}  # fmt: skip
    s = summarize(exp, counts)
    control, boost = s["variants"]
    assert control["exposures"] == 1000 and control["conversions"] == 100
    assert control["conversion_rate"] == 0.1 and control["revenue_per_exposed"] == 5.0
    assert boost["average_order_value"] == 60.0 and boost["lift"]["vs"] == "control"
    assert math.isclose(boost["lift"]["relative"], 0.5)
    assert s["srm"]["mismatch"] is False and s["bots_excluded"] is True


@pytest.mark.anyio
async def test_results_endpoint_merges_partitions_and_flags_srm(client, redis_client):
    h = bearer(EXPER)
    body = {"key": "e1", "variations": [{"name": "a"}, {"name": "b"}], "weights": [0.5, 0.5]}
    await client.post("/v1/admin/experiments", json=body, headers=h)
    redis_client.hset(data.KEYS.experiment_counts(0, "e1"), mapping={"x:a": 3000, "x:b": 2000})
    redis_client.hset(data.KEYS.experiment_counts(1, "e1"), mapping={"x:a": 3000, "x:b": 2000})
    r = await client.get("/v1/admin/experiments/e1/results", headers=h)
    doc = r.json()
    assert [v["exposures"] for v in doc["variants"]] == [6000, 4000]
    assert doc["srm"]["mismatch"] is True and doc["srm"]["p_value"] < 0.001
    assert (await client.get("/v1/admin/experiments/zz/results", headers=h)).status_code == 404


def test_assignment_targets_routes_segments_schedule_and_layers():
    exp = Experiment(
        key="e",
        seed="e",
        variations=(Variation("a"), Variation("b")),
        weights=(0.5, 0.5),
        routes=("home",),
        segments=("b" * 16,),
        start_ms=100,
        stop_ms=200,
        status="running",
        namespace=("layer", 0.0, 0.5),
    )
    shoppers = [data.sid(n) for n in range(400)]
    inside = [s for s in shoppers if assign(exp, s, route="home", hseg="b" * 16, now_ms=150) >= 0]
    assert 120 < len(inside) < 280  # about half: the namespace slice
    s = inside[0]
    assert assign(exp, s, route="pdp", hseg="b" * 16, now_ms=150) == -1
    assert assign(exp, s, route="home", hseg="c" * 16, now_ms=150) == -1
    assert assign(exp, s, route="home", hseg="b" * 16, now_ms=250) == -1
    reseeded = replace(exp, bucket_version=1)
    assert effective_seed(reseeded) == "e:b1" and effective_seed(exp) == "e"
    before = [assign(exp, s, route="home", hseg="b" * 16, now_ms=150) for s in inside]
    after = [assign(reseeded, s, route="home", hseg="b" * 16, now_ms=150) for s in inside]
    assert before != after  # re-seeding reshuffles shoppers, deliberately


@pytest.mark.anyio
async def test_results_of_a_reseeded_experiment_say_what_the_restart_cannot_undo(
    client, redis_client, clock
):
    h = bearer(EXPER)
    body = {"key": "e2", "variations": [{"name": "a"}, {"name": "b"}], "weights": [0.5, 0.5]}
    await client.post("/v1/admin/experiments", json=body, headers=h)
    await client.post("/v1/admin/experiments/e2/start", headers=h)
    fresh = (await client.get("/v1/admin/experiments/e2/results", headers=h)).json()
    assert fresh["reseeded_at_ms"] is None and fresh["caveat"] is None
    clock.advance(60)
    r = await client.patch("/v1/admin/experiments/e2", json={"weights": [0.8, 0.2]}, headers=h)
    assert r.json()["bucket_version_bumped"] is True
    doc = (await client.get("/v1/admin/experiments/e2/results", headers=h)).json()
    assert doc["bucket_version"] == 1 and doc["reseeded_at_ms"] == data.NOW_MS + 60_000
    assert "first exposure" in doc["caveat"] and "new experiment key" in doc["caveat"]


def test_older_reseeded_records_fall_back_to_when_results_restarted():
    exp = {"key": "e", "bucket_version": 2, "results_from_ms": 7, "weights": [0.5, 0.5],
           "variations": [{"name": "a"}, {"name": "b"}]}  # fmt: skip
    assert summarize(exp, {})["reseeded_at_ms"] == 7
