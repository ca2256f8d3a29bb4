"""The results math against hand-computed references, and the document's honesty rules."""

from __future__ import annotations

import math
import statistics

import jsonschema_rs  # schemathesis's validator (a dev dependency through it)
import pytest

from origin.admin.inference import TUNED_AT, compare, confidence_sequence
from origin.admin.metrics import METRICS, Arm
from origin.admin.results import summarize
from origin.admin.stats import holm, lift_ci, newcombe_diff, srm_p_value, wilson
from origin.openapi import results_schema
from origin.settings import Settings, SettingsError
from segmenter.settings import ProcessorSettings
from segmenter.settings import SettingsError as ProcessorSettingsError


def _exact_binomial(k: int, n: int, p: float) -> float:
    probs = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return sum(q for q in probs if q <= probs[k] * (1 + 1e-7))


def test_srm_is_exact_when_an_expected_count_is_small() -> None:
    # the case the chi-square approximation flagged at p = 2.1e-5
    assert math.isclose(srm_p_value([49, 1], [0.999, 0.001]), _exact_binomial(49, 50, 0.999))
    assert srm_p_value([49, 1], [0.999, 0.001]) > 0.04
    assert math.isclose(srm_p_value([1, 7], [0.5, 0.5]), _exact_binomial(1, 8, 0.5))
    # large expected counts: chi-square, 1 - P(chi2(1) < (5500-5000)^2/5000 * 2)
    assert math.isclose(srm_p_value([5500, 4500], [0.5, 0.5]), math.erfc(math.sqrt(100 / 2)))


def test_newcombe_and_wilson_match_the_published_examples() -> None:
    # Newcombe (1998), Stat Med 17:873, table II, method 10: 56/70 vs 48/80
    d, lo, hi = newcombe_diff(56, 70, 48, 80)
    assert (round(d, 4), round(lo, 4), round(hi, 4)) == (0.2, 0.0524, 0.3339)
    # Wilson (1927) / Newcombe table I: 0/10 -> [0, 0.2775]
    assert [round(x, 4) for x in wilson(0, 10)] == [0.0, 0.2775]


def test_holm_step_down() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_degenerate_rates_get_honest_intervals() -> None:
    lift, lo, hi = lift_ci(3, 3, 3, 3)  # everyone converting, 3 shoppers each
    assert lift == 0.0 and hi - lo > 0.5
    d, lo, hi = newcombe_diff(0, 5000, 250, 5000)  # a -100% variant is shown, with a range
    assert d == -0.05 and lo < -0.05 < hi < 0


def test_confidence_sequence_is_where_the_mixture_ratio_reaches_one_over_alpha() -> None:
    var, n_eff, alpha = 4e-5, 3000.0, 0.05
    lo, hi = confidence_sequence(0.001, var, n_eff, alpha)
    log_a = math.log(1 / alpha)
    tau2 = (2 * log_a + math.log(1 + 2 * log_a)) / TUNED_AT * var * n_eff
    d = hi  # Johari et al.'s normal-mixture likelihood ratio at the boundary (true value 0)
    lam = math.sqrt(var / (var + tau2)) * math.exp(tau2 * d * d / (2 * var * (var + tau2)))
    assert math.isclose(lam, 1 / alpha, rel_tol=1e-9) is False  # d is measured from 0.001
    d = hi - 0.001
    lam = math.sqrt(var / (var + tau2)) * math.exp(tau2 * d * d / (2 * var * (var + tau2)))
    assert math.isclose(lam, 1 / alpha, rel_tol=1e-9)
    assert hi - lo > 2 * 1.96 * math.sqrt(var)  # wider than the fixed-horizon interval


def _arm(values: list[tuple[int, int]]) -> Arm:
    """Per-shopper (revenue cents, orders) -> the sums the processor keeps."""
    n = len(values)
    rev = sum(r for r, _ in values)
    orders = sum(o for _, o in values)
    return Arm(n, sum(o > 0 for _, o in values), 0, orders, rev, rev,
               sum(r * r for r, _ in values), sum(o * o for _, o in values),
               sum(r * o for r, o in values))  # fmt: skip


def test_revenue_and_aov_variances_are_over_shoppers() -> None:
    shoppers = [(0, 0)] * 6 + [(1000, 1), (5000, 2), (2500, 1), (12000, 3)]
    mean, var = METRICS["revenue_per_exposed"].estimate(_arm(shoppers))
    revs = [r for r, _ in shoppers]
    assert mean == statistics.fmean(revs)
    assert math.isclose(var, statistics.variance(revs) / len(revs))
    # delta method by hand: linearize R/O around the means
    aov, v = METRICS["average_order_value"].estimate(_arm(shoppers))
    r_bar = statistics.fmean(revs)
    o_bar = statistics.fmean(o for _, o in shoppers)
    q = r_bar / o_bar
    lin = [(r - q * o) / o_bar for r, o in shoppers]
    assert math.isclose(aov, q) and math.isclose(v, statistics.variance(lin) / len(shoppers))


EXP = {"key": "e", "bucket_version": 0, "weights": [0.5, 0.5, 0.0],
       "variations": [{"name": "a"}, {"name": "b"}, {"name": "off"}]}  # fmt: skip


def test_inconsistent_counts_are_rejected_with_the_reason_not_clamped() -> None:
    doc = summarize(EXP, {"x:a": 100, "c:a": 300, "o:a": 300, "oq:a": 900, "x:b": 100})
    assert doc["inconsistent"] == ["a: 300 converters but 100 exposed shoppers"]
    assert doc["variants"][0]["conversions"] == 300  # shown as counted
    assert doc["variants"][1]["lift"] is None and "comparisons" not in doc["variants"][1]
    negative_var = {"x:a": 10, "c:a": 1, "o:a": 1, "rc:a": 5000, "rq:a": 100, "oq:a": 1,
                    "x:b": 10}  # fmt: skip
    assert "negative variance" in summarize(EXP, negative_var)["inconsistent"][0]
    below = summarize({**EXP, "results_baseline": {"x:b": 50}}, {"x:a": 10, "x:b": 10})
    assert below["inconsistent"] == ["b: exposed shoppers is negative (-40)"]


def test_exposures_in_a_zero_weight_arm_are_a_mismatch() -> None:
    srm = summarize(EXP, {"x:a": 500, "x:b": 500, "x:off": 3})["srm"]
    assert srm["mismatch"] is True and srm["zero_weight_exposures"] == {"off": 3}
    assert srm["p_value"] == 1.0  # the weighted arms themselves are balanced


def test_document_defines_its_metrics_and_corrects_for_several_treatments() -> None:
    exp = {**EXP, "weights": [0.4, 0.3, 0.3]}
    counts = {"x:a": 4000, "c:a": 200, "o:a": 200, "oq:a": 200, "x:b": 3000, "c:b": 150,
              "o:b": 150, "oq:b": 150, "x:off": 3000, "c:off": 190, "o:off": 190,
              "oq:off": 190, "d:20000:x:a": 4000, "d:20000:c:a": 200, "d:20000:x:b": 3000,
              "d:20000:c:b": 150, "k:100000": 10000}  # fmt: skip
    doc = summarize(exp, counts, "EUR")
    assert doc["currency"] == "EUR" and doc["correction"] == {"method": "holm", "treatments": 2}
    assert {m["key"] for m in doc["metrics"]} == set(METRICS) and doc["metrics"][0]["definition"]
    off = doc["variants"][2]["comparisons"]["conversion"]
    assert off["p_adjusted"] >= off["p_value"] and "sequential" in off
    assert off["ci_adjusted"][0] < off["ci"][0]  # Bonferroni-wide
    assert doc["timeline"][0]["lift"]["b"]["difference"] == 0.0
    assert doc["revenue_cap"] == {"amount": 1000.0, "changed_during_experiment": False}
    assert doc["harm"] == {}  # 6.3% vs 5% is better, 5% vs 5% is no change
    worse = summarize(exp, {**counts, "c:off": 60, "o:off": 60, "oq:off": 60})
    assert worse["harm"] == {"off": ["conversion"]}


def test_compare_needs_both_arms() -> None:
    assert compare(METRICS["conversion"], Arm(0, 0, 0, 0, 0, 0, 0, 0, 0),
                   Arm(5, 1, 0, 1, 0, 0, 0, 1, 0), 0.05, 1) is None  # fmt: skip


def test_documents_match_the_openapi_schema() -> None:
    validator = jsonschema_rs.validator_for(results_schema.results())
    exp = {**EXP, "weights": [0.4, 0.3, 0.3]}
    counts = {"x:a": 400, "c:a": 20, "o:a": 25, "oq:a": 31, "rc:a": 90000, "rq:a": 9 * 10**8,
              "ro:a": 120000, "r:a": 90000, "x:b": 300, "x:off": 300, "c:off": 300,
              "d:20000:x:a": 400, "k:100000": 1000}  # fmt: skip
    for doc in (summarize(exp, counts), summarize(EXP, {}), summarize(EXP, {"x:a": -1})):
        doc["as_of_ms"] = 1
        errors = [e.message for e in validator.iter_errors(doc)]
        assert errors == []
    assert not validator.is_valid({**summarize(EXP, {}), "currency": "usd"})


def test_control_without_conversions_keeps_the_old_lift_shape() -> None:
    counts = {"x:a": 500, "x:b": 500, "c:b": 5, "o:b": 5, "oq:b": 5}
    b = summarize(EXP, counts)["variants"][1]
    assert b["lift"] is None  # undefined ratio: as before, for the CLI that prints it
    conv = b["comparisons"]["conversion"]
    assert conv["relative"] is None and conv["ci"][0] < 0.01 < conv["ci"][1]


def test_currency_and_revenue_cap_settings_are_checked() -> None:
    local = {"P13N_TRUSTED_LOCAL": "1"}
    assert Settings.from_env(local).currency == "USD"
    assert Settings.from_env({**local, "P13N_CURRENCY": "EUR"}).currency == "EUR"
    with pytest.raises(SettingsError, match="P13N_CURRENCY"):
        Settings.from_env({**local, "P13N_CURRENCY": "usd"})
    env = {**local, "P13N_REDIS_URL": "redis://127.0.0.1:1"}
    s = ProcessorSettings.from_env({**env, "P13N_EXPERIMENT_REVENUE_CAP_CENTS": "5000"})
    assert s.experiment_revenue_cap_cents == 5000
    with pytest.raises(ProcessorSettingsError, match="REVENUE_CAP"):
        ProcessorSettings.from_env({**env, "P13N_EXPERIMENT_REVENUE_CAP_CENTS": "0"})
