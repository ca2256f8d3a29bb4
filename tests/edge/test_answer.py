"""Answers, headers, Cache-Status, exposures and stored entries."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edge
from cache_keys.experiments import exposure_event_id
from cache_keys.wire import ListItem, RailItem, RoutePolicy, SegmentList
from edge.answer import (
    _body,
    _ranked_body,
    answer_from_list,
    answer_from_rail,
    cache_status,
    exposure_batch,
    response_headers,
)
from edge.entry import decode_entry, encode_entry, entry_tags, stored_headers
from edge.plan import decide
from edge.rerank import Ranked, prepare
from segmenter.event import Event, validate
from tests.support.edge import (
    HSEG,
    NOW_MS,
    SHOPPER,
    config,
    experiment,
    items,
    make_settings,
    parts,
    token,
)

SETTINGS = make_settings()


@pytest.mark.parametrize(
    ("args", "kwargs", "header"),
    [
        (("hit",), {"ttl_s": 42}, "p13n-edge; hit; ttl=42; detail=hit"),
        (
            ("stale",),
            {"ttl_s": -5, "detail": "stale-while-revalidate"},
            "p13n-edge; hit; ttl=-5; detail=stale-while-revalidate",
        ),
        (
            ("miss",),
            {"fwd_status": 200},
            "p13n-edge; fwd=miss; fwd-status=200; stored; detail=miss",
        ),
        (("origin",), {"fwd_status": 200}, "p13n-edge; fwd=bypass; fwd-status=200; detail=origin"),
        (("default",), {}, "p13n-edge; fwd=miss; detail=default"),
        (
            ("miss",),
            {"fwd_status": 200, "fault": "cache-error"},
            "p13n-edge; fwd=miss; fwd-status=200; detail=miss/cache-error",  # not "stored"
        ),
        (("default",), {"fault": "core-error"}, "p13n-edge; fwd=miss; detail=default/core-error"),
    ],
)
def test_cache_status(args, kwargs, header) -> None:
    assert cache_status("p13n-edge", *args, **kwargs) == header


def test_cache_status_rejects_unknown_tiers() -> None:
    with pytest.raises(ValueError, match="tier"):
        cache_status("x", "warm")


def test_answer_body_and_per_shopper_headers() -> None:
    plan = decide(
        parts(shopper=None, query={"k": "2"}),
        config(experiments=[experiment()]),
        SETTINGS,
        NOW_MS,
        mint=lambda: "m" * 22,
    )
    ans = answer_from_list(plan, items(5), frozenset({"I-000"}), tier="miss", status="s")
    doc = json.loads(ans.body)
    assert doc == {
        "items": [
            {"item": "I-001", "score": 0.99, "reason": "segment"},
            {"item": "I-002", "score": 0.98, "reason": "segment"},
        ],
        "variants": {"rail-algo": "boost"},
        "degraded": False,
    }
    headers = response_headers(plan, ans)
    assert ("cache-control", "private, no-store") in headers
    assert [v for k, v in headers if k == "set-cookie"] == list(plan.set_cookies)
    assert not any(k == "vary" for k, _ in headers)


def test_default_answers_are_degraded_and_say_default() -> None:
    plan = decide(parts(seg=token()), config(), SETTINGS, NOW_MS)
    doc = json.loads(
        answer_from_list(
            plan, items(3), frozenset(), tier="default", status="s", degraded=True
        ).body
    )
    assert doc["degraded"] is True
    assert {i["reason"] for i in doc["items"]} == {"default"}


def test_origin_answer_is_masked_and_cut_to_k() -> None:
    plan = decide(parts(seg=token(), query={"k": "2"}), config(), SETTINGS, NOW_MS)
    rail = [RailItem(f"P-{i}", 1.0, "personal") for i in range(5)]
    doc = json.loads(answer_from_rail(plan, rail, frozenset({"P-0"}), "s").body)
    assert [i["item"] for i in doc["items"]] == ["P-1", "P-2"]


MILK = {"name": "Whole milk 1 l", "image_url": "https://cdn.shop.example/milk.jpg"}


def test_labels_survive_the_rerank_the_stored_entry_and_the_default_answer() -> None:
    plan = decide(parts(seg=token(), query={"k": "3"}), config(), SETTINGS, NOW_MS)
    labelled = tuple(replace(i, **MILK) if i.item == "I-001" else i for i in items(5))
    sl = SegmentList(HSEG, "control", '"l"', 0, labelled)
    entry = decode_entry(encode_entry(sl, entry_tags("home", HSEG, [], sl), config(), NOW_MS))
    assert entry is not None
    for tier, mask in (("hit", frozenset({"I-000"})), ("default", frozenset())):
        doc = json.loads(answer_from_list(plan, entry.seglist.items, mask, tier=tier,
                                          status="s").body)  # fmt: skip
        by_item = {i["item"]: i for i in doc["items"]}
        assert by_item["I-001"] == {**by_item["I-001"], **MILK, "price": 2.0}
        assert set(by_item["I-002"]) == {"item", "score", "reason"}  # none: nothing added


def test_the_origins_labels_pass_through() -> None:
    plan = decide(parts(seg=token(), query={"k": "2"}), config(), SETTINGS, NOW_MS)
    rail = [RailItem("P-0", 1.0, "personal", price=3.5, **MILK), RailItem("P-1", 0.5, "personal")]
    doc = json.loads(answer_from_rail(plan, rail, frozenset(), "s").body)
    assert doc["items"] == [
        {"item": "P-0", "score": 1.0, "reason": "personal", **MILK, "price": 3.5},
        {"item": "P-1", "score": 0.5, "reason": "personal"},
    ]


def test_exposure_batch_one_event_per_experiment_with_daily_ids() -> None:
    cfg = config(experiments=[experiment(), experiment("banner")])
    plan = decide(parts(seg=token()), cfg, SETTINGS, NOW_MS)
    batch = exposure_batch(plan, NOW_MS)
    assert batch is not None
    assert [(e["experiment"], e["variant"]) for e in batch["events"]] == [
        ("rail-algo", "boost"),
        ("banner", "boost"),
    ]
    ev = batch["events"][0]
    assert ev["event_id"] == exposure_event_id(SHOPPER, "rail-algo", NOW_MS)
    assert ev["type"] == "exposure" and ev["user"] == SHOPPER and ev["ts"] == NOW_MS
    assert len(ev["event_id"]) <= 64 and ev["event_id"].isascii()
    later = exposure_batch(plan, NOW_MS + 3_600_000)
    assert later is not None and later["events"][0]["event_id"] == ev["event_id"]


def test_a_bots_exposures_are_flagged_so_results_leave_them_out() -> None:
    cfg = config(experiments=[experiment()])
    ua = {"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}
    batch = exposure_batch(decide(parts(seg=token(), headers=ua), cfg, SETTINGS, NOW_MS), NOW_MS)
    assert batch is not None and all(e["bot"] is True for e in batch["events"])
    human = exposure_batch(decide(parts(seg=token()), cfg, SETTINGS, NOW_MS), NOW_MS)
    assert human is not None and all("bot" not in e for e in human["events"])


def test_no_exposures_without_experiments_or_when_opted_out() -> None:
    cfg = config(experiments=[experiment()])
    assert exposure_batch(decide(parts(seg=token()), config(), SETTINGS, NOW_MS), NOW_MS) is None
    out = decide(parts(seg=token(), headers={"sec-gpc": "1"}), cfg, SETTINGS, NOW_MS)
    assert exposure_batch(out, NOW_MS) is None


def test_stored_entry_round_trip_and_headers() -> None:
    sl = SegmentList(HSEG, "control", '"l"', 0, tuple(items(4)))
    tags = entry_tags("home", HSEG, ["rail-algo"], sl)
    assert tags[:3] == ["route:home", f"seg:{HSEG}", "exp:rail-algo"]
    assert "sku:i-000" in tags and "cat:a" in tags
    cfg = config(generations={"sku:i-000": [1, 2]})
    entry = decode_entry(encode_entry(sl, tags, cfg, NOW_MS))
    assert entry is not None
    assert entry.stored_at_ms == NOW_MS and entry.seglist == sl
    assert entry.gens["sku:i-000"] == (1, 2) and entry.gens["*"] == (0, 0)
    headers = stored_headers(RoutePolicy("home", max_age_s=60, swr_s=300, sie_s=3600), tags)
    assert headers["cache-control"] == "public, max-age=3660"
    assert headers["cache-tag"].split(",") == tags
    assert "set-cookie" not in headers


@pytest.mark.parametrize("junk", ["", "{", "[]", '{"v": 2}', '{"v": 1, "stored_at_ms": "x"}'])
def test_unreadable_entries_are_misses(junk: str) -> None:
    assert decode_entry(junk) is None


def test_public_api_is_listed() -> None:
    for name in edge.__all__:
        assert hasattr(edge, name), name
    assert {"decide", "freshness", "rerank", "RequestParts", "Plan"} <= set(edge.__all__)
    assert "worker" not in edge.__all__


def test_a_degraded_answer_adds_a_v4_marker_with_its_own_daily_id() -> None:
    plan = decide(parts(seg=token()), config(experiments=[experiment()]), SETTINGS, NOW_MS)
    batch = exposure_batch(plan, NOW_MS, degraded=True)
    plain = exposure_batch(plan, NOW_MS)
    assert batch is not None and plain is not None
    exposure, marker = batch["events"]
    assert exposure == plain["events"][0] and exposure["v"] == 1 and "degraded" not in exposure
    assert marker["v"] == 4 and marker["degraded"] is True
    assert marker["event_id"] == exposure["event_id"] + "-d"
    assert {k: v for k, v in marker.items() if k not in ("v", "event_id", "degraded")} == {
        k: v for k, v in exposure.items() if k not in ("v", "event_id")
    }
    parsed = validate(marker)
    assert isinstance(parsed, Event) and parsed.degraded


_NAMES = st.text(alphabet=st.sampled_from('ab-"\\é\u2028\U0001f600'), min_size=1, max_size=6)
_SCORES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(_NAMES, _SCORES, st.sampled_from(["segment", "recent-category", 'x"y'])),
        max_size=12,
    ),
    labelled=st.dictionaries(
        _NAMES,
        st.tuples(_NAMES, st.sampled_from(["", "https://i.test/a.png"]), st.none() | st.floats()),
    ),
    variants=st.dictionaries(_NAMES, _NAMES, max_size=3),
    degraded=st.booleans(),
    override=st.sampled_from([None, "default"]),
)
def test_ranked_body_is_the_reference_json(rows, labelled, variants, degraded, override) -> None:
    """The fragment-built body is byte for byte what ``json.dumps`` of the row dicts gives."""
    ranked = [Ranked(n, s, r) for n, s, r in rows]
    prep = prepare(
        tuple(
            ListItem(n, 0.5, name=a, image_url=b, price=p or 0.0)
            for n, (a, b, p) in labelled.items()
        )
    )
    want = _body(((n, s, override or r) for n, s, r in ranked), variants, degraded, prep.labels)
    got = _ranked_body(ranked, prep, variants, degraded, override)
    assert got == want
    assert _ranked_body(ranked, prep, variants, degraded, override) == want  # fragments kept
