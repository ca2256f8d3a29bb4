"""Schema evolution: the registry against its lock, v1 and v2 side by side, breaking changes
made on a temporary copy of the registry are caught."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from segmenter import compat, event, registry
from segmenter.aggregates import Entry, PartitionEffects
from segmenter.event import Event, Rejection
from segmenter.metrics import Metrics

T0 = 1_700_000_000_000
VIEW = {"v": 1, "event_id": "e1", "type": "view", "user": "u1", "item": "sku-1", "ts": T0}


def test_the_registry_keeps_every_published_version() -> None:
    assert compat.check(compat.load_lock()) == []
    assert compat.main([]) == 0


def test_every_published_example_still_reads_and_round_trips() -> None:
    lock = compat.load_lock()
    assert set(lock) >= {"1", "2", "3"}
    for spec in lock.values():
        for doc in spec["examples"]:
            ev = event.validate(doc)
            assert isinstance(ev, Event), (doc, ev)
            assert event.decode(event.encode(ev)) == ev


def test_v2_carries_a_position_and_v1_stays_readable() -> None:
    v2 = event.validate({**VIEW, "v": 2, "position": 4})
    assert isinstance(v2, Event) and v2.position == 4
    assert event.to_doc(v2)["v"] == 2
    v1 = event.validate(VIEW)
    assert isinstance(v1, Event) and v1.position is None
    # a v2 event without the new field is written as v1: consumers not yet upgraded read it
    plain = event.validate({**VIEW, "v": 2})
    assert isinstance(plain, Event) and event.to_doc(plain) == VIEW


def test_v3_carries_identify_and_customer_ids_and_older_events_stay_older() -> None:
    ident = event.validate({**VIEW, "v": 3, "type": "identify", "user": "cust_1", "anon": "a1"})
    assert isinstance(ident, Event) and ident.anon == "a1"
    assert event.to_doc(ident)["v"] == 3
    customer = event.validate({**VIEW, "v": 3, "user": "acme:c.1"})
    assert isinstance(customer, Event) and event.to_doc(customer)["v"] == 3
    plain = event.validate({**VIEW, "v": 3, "position": 2})
    assert isinstance(plain, Event) and event.to_doc(plain)["v"] == 2


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ({**VIEW, "position": 1}, "position", "not part of version 1 (added in version 2)"),
        ({**VIEW, "v": 2, "position": -1}, "position", "between 0 and 999"),
        ({**VIEW, "v": 2, "position": "3"}, "position", "integer"),
        ({**VIEW, "v": 9}, "v", "this build reads 1, 2, 3"),
        ({**VIEW, "type": "identify", "anon": "a1"}, "anon", "not part of version 1"),
        (
            {**VIEW, "v": 2, "type": "identify"},
            "type",
            "not part of version 2 (added in version 3)",
        ),
        ({**VIEW, "user": "acme:c.1"}, "user", "not part of version 1 (added in version 3)"),
    ],
)
def test_version_mistakes_name_the_field(doc, field, words) -> None:
    got = event.validate(doc)
    assert isinstance(got, Rejection) and got.field == field and words in got.problem


def test_per_version_counts_are_metrics() -> None:
    m = Metrics()
    fx = PartitionEffects()
    for i, doc in enumerate([VIEW, {**VIEW, "v": 2, "position": 1}, {**VIEW, "v": 2}]):
        ev = event.validate(doc)
        assert isinstance(ev, Event)
        fx.accepted.append(Entry(f"{T0}-{i}", b"", ev))
    m.observe_batch(fx, 0.0, T0)
    got = {v: m.registry.get_sample_value("p13n_segmenter_event_versions_total", {"v": v})
           for v in ("1", "2")}  # fmt: skip
    assert got == {"1": 2.0, "2": 1.0}
    assert m.registry.get_sample_value("p13n_segmenter_rejected_total", {"field": "position"}) == 0


# -- breaking changes, each made on a temporary copy of the registry ----------------------
V4_ADDITIVE = """
VERSIONS[5] = Version(5, 1, {**VERSIONS[4].fields, "list": _text(_SLUG)},
                      (VERSIONS[4].examples[-1] | {"v": 5, "list": "home"},))
"""
V4_REMOVES = """
VERSIONS[5] = Version(5, 1, {k: f for k, f in VERSIONS[4].fields.items() if k != "session"},
                      ({"v": 5, "event_id": "x", "type": "view", "user": "u", "ts": _T0},))
"""
V4_MAJOR_NO_UPCASTER = """
VERSIONS[5] = Version(5, 2, {**VERSIONS[4].fields, "price": Field("int", minimum=0)},
                      ({"v": 5, "event_id": "x", "type": "view", "user": "u", "ts": _T0},))
"""
V4_MAJOR = V4_MAJOR_NO_UPCASTER.replace(
    ",))",
    ",), upcaster=lambda d: {**d, 'v': 5} | ({'price': round(d['price'] * 100)} "
    "if 'price' in d else {}))",
)
V4_MAJOR_BAD_UPCASTER = V4_MAJOR_NO_UPCASTER.replace(",))", ",), upcaster=lambda d: {**d, 'v': 5})")
# Widening within a major is additive; narrowing (or a changed kind) is not.
V4_WIDENS = """
VERSIONS[5] = Version(5, 1, {**VERSIONS[4].fields,
                             "qty": Field("int", minimum=1, maximum=5000),
                             "type": Field("enum", True, values=(*EVENT_TYPES, "refund"))},
                      ({"v": 5, "event_id": "x", "type": "refund", "user": "u", "ts": _T0},))
"""
V4_NARROWS = """
VERSIONS[5] = Version(5, 1, {**VERSIONS[4].fields, "qty": Field("int", minimum=1, maximum=10)},
                      ({"v": 5, "event_id": "x", "type": "view", "user": "u", "ts": _T0},))
"""
V4_ENUM_REORDERED = """
VERSIONS[5] = Version(5, 1, {**VERSIONS[4].fields,
                             "type": Field("enum", True, values=tuple(reversed(EVENT_TYPES)))},
                      ({"v": 5, "event_id": "x", "type": "view", "user": "u", "ts": _T0},))
"""


def _copy(tmp_path: Path, old: str = "", new: str = "", append: str = ""):
    path = tmp_path / "registry_copy.py"
    shutil.copy(registry.__file__, path)
    text = path.read_text()
    if old:
        assert old in text
        text = text.replace(old, new)
    path.write_text(text + append)
    spec = importlib.util.spec_from_file_location("registry_copy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["registry_copy"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["registry_copy"]
    return compat.check(compat.load_lock(), module.VERSIONS)


def test_an_unchanged_copy_passes(tmp_path) -> None:
    assert _copy(tmp_path) == []


@pytest.mark.parametrize(
    ("old", "new", "append", "finding"),
    [
        ('"qty": Field("int", minimum=1, maximum=1000)',
         '"qty": Field("int", minimum=1, maximum=100)', "", "v1: published version changed"),
        ('"position": Field("int", minimum=0, maximum=999)',
         '"position": Field("int", True, minimum=0, maximum=999)', "",
         "v2: published version changed"),
        ("", "", V4_REMOVES, "v5: removes 'session' within major 1"),
        ("", "", V4_MAJOR_NO_UPCASTER, "v5: starts major 2 without an upcaster"),
        ("", "", V4_MAJOR_BAD_UPCASTER, "upcast v4 e2 is invalid: price is not int"),
        ("", "", V4_ADDITIVE.replace('_text(_SLUG)', '_text(_SLUG, required=True)'),
         "v5: adds required 'list' within major 1"),
        ("", "", V4_NARROWS, "v5: changes 'qty' within major 1"),
        ("", "", V4_ENUM_REORDERED, "v5: changes 'type' within major 1"),
    ],
)  # fmt: skip
def test_a_breaking_change_fails_the_check(tmp_path, old, new, append, finding) -> None:
    problems = _copy(tmp_path, old, new, append)
    assert any(finding in p for p in problems), problems


@pytest.mark.parametrize("append", [V4_ADDITIVE, V4_MAJOR, V4_WIDENS])
def test_allowed_changes_pass(tmp_path, append) -> None:
    assert _copy(tmp_path, append=append) == []
