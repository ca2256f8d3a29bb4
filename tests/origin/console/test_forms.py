"""The experiment form <-> the API document, and the two charts' geometry (pure)."""

from __future__ import annotations

import pytest

from cache_keys import hash_segment
from origin.console import forms
from origin.console.charts import lift_chart, ratio_chart

HSEG = hash_segment("returning|dairy|mid", b"k" * 32)


def test_a_new_form_becomes_the_create_document() -> None:
    form = dict.fromkeys(forms.FIELDS, "")
    form.update(
        key="rail-algo", name="Rails", variations="control\nboost list-b", weights="0.3, 0.7",
        coverage="0.5", layer="rails", layer_start="0", layer_end="0.5",
        segments=f"returning|dairy|mid, {HSEG}", routes="home, cart", start="2026-01-31T09:00",
    )  # fmt: skip
    doc = forms.to_doc(form)
    assert doc == {
        "key": "rail-algo",
        "name": "Rails",
        "variations": [{"name": "control"}, {"name": "boost", "list_variant": "list-b"}],
        "weights": [0.3, 0.7],
        "coverage": 0.5,
        "namespace": {"layer": "rails", "start": 0.0, "end": 0.5},
        "segments": [HSEG],
        "segment_names": ["returning|dairy|mid"],
        "routes": ["home", "cart"],
        "start_ms": 1769850000000,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("weights", "0.5, half"), ("coverage", "all"), ("start", "tomorrow"), ("variations", "a b c")],
)
def test_unparseable_values_name_their_form_field(field, value) -> None:
    form = {"key": "k", "variations": "a\nb", field: value}
    with pytest.raises(forms.FormError) as err:
        forms.to_doc(form)
    assert err.value.field == field


def test_an_edit_sends_only_what_changed_and_keeps_variation_settings() -> None:
    stored = {
        "key": "rail-algo", "name": "Rails", "description": "",
        "variations": [{"name": "control", "list_variant": "control"},
                       {"name": "boost", "list_variant": "control",
                        "weights": {"category_boost": 2.0}}],
        "weights": [0.5, 0.5], "coverage": 1.0, "namespace": ["rails", 0.0, 0.5],
        "segments": [HSEG], "routes": [], "start_ms": None, "stop_ms": None,
    }  # fmt: skip
    shown = forms.to_form(stored)
    assert forms.changes(shown, stored) == {}
    assert forms.changes({**shown, "coverage": "0.25"}, stored) == {"coverage": 0.25}
    changed = forms.changes({**shown, "variations": "control\nboost\nthird"}, stored)
    assert changed["variations"][1] == stored["variations"][1]
    assert changed["variations"][2] == {"name": "third"}
    assert forms.changes({**shown, "layer_end": "0.6"}, stored) == {
        "namespace": {"layer": "rails", "start": 0.0, "end": 0.6}
    }
    assert forms.changes({**shown, "layer": ""}, stored) == {"namespace": None}


def test_lift_chart_always_shows_zero_and_each_interval() -> None:
    variants = [
        {"variant": "control", "lift": None},
        {"variant": "b", "lift": {"relative": 0.3, "ci95": [0.05, 0.6]}},
        {"variant": "c", "lift": {"relative": -0.1, "ci95": [-0.3, 0.1]}},
    ]
    chart = lift_chart(variants)
    assert chart is not None and [b.variant for b in chart.bars] == ["b", "c"]
    b, c = chart.bars
    assert b.x_lo < b.x_point < b.x_hi and chart.x_zero < b.x_lo  # b's interval excludes 0
    assert c.x_lo < chart.x_zero < c.x_hi  # c's interval crosses 0
    # the labels are the intervals' ends, not the padded chart range
    assert (b.lo_label, b.hi_label, c.lo_label, c.hi_label) == (
        "+5.0%",
        "+60.0%",
        "-30.0%",
        "+10.0%",
    )
    assert not hasattr(chart, "axis")
    assert lift_chart([{"variant": "control", "lift": None}]) is None


def test_ratio_chart_breaks_lines_at_gaps() -> None:
    buckets = [{"hit_ratio": 1.0}, {"hit_ratio": 0.5}, {"hit_ratio": None}, {"hit_ratio": 0.0}]
    chart = ratio_chart(buckets, ["hit_ratio"])
    assert len(chart.series["hit_ratio"]) == 2
    first = chart.series["hit_ratio"][0].split()
    assert first[0].endswith(",10.0") and first[1].endswith(",60.0")  # 100% at top, 50% mid
    assert chart.latest["hit_ratio"] == 0.0
