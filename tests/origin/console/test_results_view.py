"""The results page's number formatting."""

from __future__ import annotations

import doctest

from origin.admin import metrics, stats, timeline
from origin.console import results_view
from origin.console.results_view import metric_views, money


def test_money_has_its_currency_and_separators() -> None:
    assert money(22972.67, "USD") == "$22,972.67"  # was shown raw as 22972.67
    assert money(1500, "JPY") == "¥1,500" and money(-3.5, "CHF") == "-CHF 3.50"


def test_module_examples_hold() -> None:
    for module in (results_view, metrics, stats, timeline):
        failed, tried = doctest.testmod(module)
        assert tried > 0 and failed == 0, module.__name__


def test_currency_metrics_show_differences_with_a_sign() -> None:
    doc = {"currency": "EUR", "metrics": [{"key": "revenue_per_exposed", "name": "R",
           "definition": "d", "unit": "currency"}],
           "variants": [{"variant": "a", "metrics": {"revenue_per_exposed": 2.5}},
                        {"variant": "b", "metrics": {"revenue_per_exposed": 3.0},
                         "comparisons": {"revenue_per_exposed": {
                             "difference": 0.5, "ci": [-0.25, 1.25], "ci_adjusted": [-0.5, 1.5],
                             "relative": 0.2, "relative_ci": [-0.1, 0.5], "p_value": 0.2,
                             "p_adjusted": 0.2, "significant": False,
                             "sequential": {"ci": [-1.0, 2.0], "significant": False},
                             "mde_relative": 0.3, "n_per_arm_for_5pct": 12345}}}]}  # fmt: skip
    (view,) = metric_views(doc)
    control, b = view.rows
    assert control["value"] == "€2.50" and control["vs"] is None
    assert b["vs"]["difference"] == "+€0.50" and b["vs"]["ci"] == "[-€0.25, +€1.25]"
    assert b["vs"]["n_for_5pct"] == "12,345" and b["vs"]["relative"] == "+20.00%"
