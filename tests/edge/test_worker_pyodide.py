"""The Cloudflare Python Worker in real Pyodide against a real (stand-in) origin process.

The Worker class is driven the way workerd drives it (instance per request with ctx and env;
the SDK converts the request and the response), with Cloudflare's SDK wheel, the Cache API
stand-in and the controllable clock of ``pyodide/harness.mjs``. ``drain`` waits for what the
Worker handed to ``ctx.waitUntil`` (stores, revalidations, exposure posts).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cache_keys.experiments import exposure_event_id
from cache_keys.segments import ANON_HSEG
from cache_keys.wire import SEGMENT_COOKIE, SHOPPER_COOKIE
from ops.local.redis import free_port
from segmenter.event import Event, validate
from tests.edge.rail_requests import (
    HSEG,
    SHOP,
    SHOPPER,
    config_doc,
    drain,
    experiment,
    shopper_cookie,
    valid_token,
)
from tests.edge.rail_requests import worker_get as get
from tests.support.data import VECTOR_DIR
from tests.support.standin_origin import default_list_items
from tests.support.worker import StandinOrigin, WorkerHarness, pairing
from tests.vectors.check import cases

pytestmark = pytest.mark.pyodide


@pytest.fixture
def worker(pyodide_worker: WorkerHarness, origin: StandinOrigin):
    """A new isolate with an empty cache, configured against the reset stand-in origin."""

    def start(config: dict[str, Any] | None = None, **vars: str) -> WorkerHarness:
        origin.control("config", config or config_doc())
        pyodide_worker.new_isolate(origin.url, **vars)
        return pyodide_worker

    return start


def test_runs_the_runtimes_pyodide_and_every_contract_vector(
    pyodide_worker: WorkerHarness,
) -> None:
    pair = pairing()  # the Pyodide and Python the pinned workerd runs for our date
    assert pyodide_worker.hello["pyodide"] == pair["pyodide"]
    result = pyodide_worker.call("vectors", path="/app/tests/vectors")
    assert result["failures"] == []
    assert result["count"] == len(list(cases(VECTOR_DIR)))  # every case CPython runs
    version = pyodide_worker.call("run_python", code="import sys; sys.version.split()[0]")
    assert version == pair["python"]
    where = pyodide_worker.call("run_python", code="import workers; workers.__file__")
    assert where == "/session/metadata/python_modules/workers/__init__.py"  # as deployed


def test_miss_then_hit(worker, origin: StandinOrigin) -> None:
    w = worker()
    first = get(w, cookie=shopper_cookie(token=valid_token()))
    assert first.status == 200
    assert first.detail == "miss"
    assert first.header("cache-status").startswith("p13n-edge; fwd=miss; fwd-status=200; stored")
    assert first.header("cache-control") == "private, no-store"
    assert first.header("vary") is None
    listed = {i["item"]: i for i in default_list_items("control")}
    assert first.items == list(listed)[:5]
    for got in first.json["items"]:  # the list's labels (and price) survive the rerank
        want = listed[got["item"]]
        labels = {k: want[k] for k in ("name", "image_url", "price")} if "name" in want else {}
        assert {k: v for k, v in got.items() if k not in ("score", "reason")} == {
            "item": got["item"],
            **labels,
        }
    assert first.json["degraded"] is False
    assert first.cookies() == {}  # the shopper already had an id and a fresh segment
    drain(w)
    second = get(w, cookie=shopper_cookie(token=valid_token()))
    assert second.detail == "hit"
    assert re.search(r"; hit; ttl=\d+", second.header("cache-status"))
    assert second.json["items"] == first.json["items"]  # labels kept in the stored entry
    assert origin.stats()["counts"]["list"] == 1
    entries = w.call("cache")["entries"]
    assert [e["url"] for e in entries] == [f"{SHOP}/__p13n/v1/home/{HSEG}/en-us/desktop/-/g0"]


def test_new_shopper_gets_an_id_cookie_only_on_their_response(worker) -> None:
    w = worker()
    reply = get(w)
    cookies = reply.cookies()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cookies[SHOPPER_COOKIE.name])
    set_cookie = reply.header("set-cookie")
    assert "HttpOnly" in set_cookie and "Secure" in set_cookie
    drain(w)
    cache = w.call("cache")
    assert cache["refused"] == []
    assert all(k != "set-cookie" for e in cache["entries"] for k, _ in e["headers"])


def test_stale_while_revalidate_in_the_background(worker, origin: StandinOrigin) -> None:
    w = worker()
    cookie = shopper_cookie(token=valid_token())
    get(w, cookie=cookie)
    drain(w)
    w.call("advance", ms=90_000)  # past max-age 60 s, inside stale-while-revalidate 300 s
    stale = get(w, cookie=cookie)
    assert stale.detail == "stale-while-revalidate"
    assert re.search(r"ttl=-\d+", stale.header("cache-status"))
    assert stale.pending >= 1
    assert stale.json["degraded"] is False
    drain(w)
    assert origin.stats()["counts"]["list"] == 2
    assert get(w, cookie=cookie).detail == "hit"


def test_hard_purge_of_an_item_makes_the_entry_unservable(worker, origin: StandinOrigin) -> None:
    w = worker()
    cookie = shopper_cookie(token=valid_token())
    get(w, cookie=cookie)
    drain(w)
    first_item = default_list_items("control")[0]["item"].lower()
    origin.control("config", config_doc(generations={f"sku:{first_item}": [1, 1]}))
    w.call("advance", ms=31_000)  # the config is past its max-age: refreshed in the background
    assert get(w, cookie=cookie).detail == "hit"  # served with the config it had
    drain(w)
    after = get(w, cookie=cookie)
    assert after.detail == "miss"
    assert origin.stats()["counts"]["list"] == 2


def test_soft_purge_serves_stale_and_revalidates(worker, origin: StandinOrigin) -> None:
    w = worker()
    cookie = shopper_cookie(token=valid_token())
    get(w, cookie=cookie)
    drain(w)
    origin.control("config", config_doc(generations={"route:home": [1, 0]}))
    w.call("advance", ms=31_000)
    get(w, cookie=cookie)
    drain(w)  # new config now in the isolate
    soft = get(w, cookie=cookie)
    assert soft.detail == "stale-while-revalidate"
    drain(w)
    assert get(w, cookie=cookie).detail == "hit"


def test_purge_by_cache_tag_reaches_stored_entries(worker) -> None:
    w = worker()
    cookie = shopper_cookie(token=valid_token())
    get(w, cookie=cookie)
    drain(w)
    tags = w.call("cache")["entries"][0]["tags"]
    assert {"route:home", f"seg:{HSEG}", "cat:dairy"} <= set(tags)
    assert w.call("purge_tag", tag="cat:dairy") == 1
    assert get(w, cookie=cookie).detail == "miss"


def test_masked_item_disappears_without_a_list_refresh(worker, origin: StandinOrigin) -> None:
    w = worker()
    cookie = shopper_cookie(token=valid_token())
    first = get(w, cookie=cookie)
    drain(w)
    masked = first.items[0]
    origin.control("config", config_doc(item_mask=[masked]))
    w.call("advance", ms=31_000)
    get(w, cookie=cookie)
    drain(w)
    after = get(w, cookie=cookie)
    assert after.detail == "hit"
    assert masked not in after.items
    assert origin.stats()["counts"]["list"] == 1


def test_origin_down_serves_stale_if_error_then_the_default_list(
    worker, origin: StandinOrigin
) -> None:
    w = worker()
    cookie = shopper_cookie(token=valid_token())
    fresh = get(w, cookie=cookie)
    drain(w)
    origin.control("mode", {"mode": "down"})
    w.call("advance", ms=400_000)  # past stale-while-revalidate, inside stale-if-error
    stale = get(w, cookie=cookie)
    assert stale.status == 200
    assert stale.detail == "stale-if-error"
    assert stale.json["degraded"] is True
    assert stale.items == fresh.items
    w.call("advance", ms=4_000_000)  # past stale-if-error: nothing servable is left
    default = get(w, cookie=cookie)
    assert default.status == 200
    assert default.detail == "default"
    assert "fwd-status=503" in default.header("cache-status")
    assert default.items == ["DEFAULT-1"]
    assert default.json["degraded"] is True


def test_a_stale_if_error_answer_sends_a_degraded_marker_in_event_v4(
    worker, origin: StandinOrigin
) -> None:
    w = worker(config_doc(experiments=[experiment()]))
    cookie = shopper_cookie(token=valid_token())
    get(w, cookie=cookie)
    drain(w)
    origin.control("mode", {"mode": "down"})  # the feeds; the collector still takes events
    w.call("advance", ms=400_000)
    stale = get(w, cookie=cookie)
    assert stale.detail == "stale-if-error"
    drain(w)
    fresh_ev, stale_ev, marker = origin.stats()["events"]
    assert fresh_ev["v"] == 1 and "degraded" not in fresh_ev
    assert stale_ev["event_id"] == fresh_ev["event_id"]  # the day's exposure, deduped
    assert marker["v"] == 4 and marker["degraded"] is True
    assert marker["event_id"] == fresh_ev["event_id"] + "-d"
    assert isinstance(validate(marker), Event)


def test_origin_slower_than_its_budget_gives_the_default_list(
    worker, origin: StandinOrigin
) -> None:
    w = worker(ORIGIN_TIMEOUT_MS="300")
    origin.control("mode", {"mode": "slow", "delay_ms": 2000})
    reply = get(w, cookie=shopper_cookie(token=valid_token()))
    assert reply.status == 200
    assert reply.detail == "default"


def test_cold_isolate_with_origin_down_uses_the_built_in_default(
    worker, origin: StandinOrigin
) -> None:
    origin.control("mode", {"mode": "down"})
    w = worker(DEFAULT_ITEMS=json.dumps([{"item": "BUILTIN-1", "score": 1.0}]))
    reply = get(w, cookie=shopper_cookie(token=valid_token()))
    assert reply.status == 200
    assert reply.detail == "default"
    assert reply.items == ["BUILTIN-1"]


def test_forged_segment_cookie_means_the_anonymous_segment(worker) -> None:
    w = worker()
    forged = valid_token()[:-4] + "AAAA"
    reply = get(w, cookie=shopper_cookie(token=forged))
    assert reply.status == 200
    drain(w)
    urls = [e["url"] for e in w.call("cache")["entries"]]
    assert urls == [f"{SHOP}/__p13n/v1/home/{ANON_HSEG}/en-us/desktop/-/g0"]


def test_missing_segment_cookie_is_fetched_from_the_origin(worker, origin: StandinOrigin) -> None:
    w = worker()
    origin.control("segment", {"shopper": SHOPPER, "hseg": HSEG})
    reply = get(w, cookie=shopper_cookie())
    token = reply.cookies()[SEGMENT_COOKIE.name]
    assert token.split(".")[1] == HSEG
    assert f"{SHOPPER_COOKIE.name}={SHOPPER}" in origin.stats()["seen_cookies"]
    drain(w)
    assert [e["url"].split("/")[6] for e in w.call("cache")["entries"]] == [HSEG]


def test_no_shopper_id_in_any_stored_key_tag_or_body(worker, origin: StandinOrigin) -> None:
    w = worker(config_doc(experiments=[experiment()]))
    shoppers = [SHOPPER, "Zz9_-abcdefghijklmnopq", "0000000000000000000000"]
    for s in shoppers:
        get(w, cookie=shopper_cookie(s, valid_token()))
    minted = get(w).cookies()[SHOPPER_COOKIE.name]
    drain(w)
    cache = w.call("cache")
    assert cache["entries"] and cache["refused"] == []
    stored = json.dumps(cache["entries"])
    for s in [*shoppers, minted]:
        assert s not in stored


def test_exposures_one_post_per_request_with_daily_ids(worker, origin: StandinOrigin) -> None:
    w = worker(config_doc(experiments=[experiment(), experiment("banner")]))
    cookie = shopper_cookie(token=valid_token())
    first = get(w, cookie=cookie)
    assert first.json["variants"] == {"rail-algo": "trending", "banner": "trending"}
    get(w, cookie=cookie)
    drain(w)
    stats = origin.stats()
    assert stats["event_posts"] == 2
    events = stats["events"]
    assert {e["type"] for e in events} == {"exposure"}
    now_ms = events[0]["ts"]
    assert {e["event_id"] for e in events} == {
        exposure_event_id(SHOPPER, "rail-algo", now_ms),
        exposure_event_id(SHOPPER, "banner", now_ms),
    }
    assert all(e["user"] == SHOPPER and e["variant"] == "trending" for e in events)


def test_opt_out_means_anonymous_no_id_no_exposure(worker, origin: StandinOrigin) -> None:
    w = worker(config_doc(experiments=[experiment()]))
    reply = get(w, sec_gpc="1", cookie=shopper_cookie(token=valid_token()))
    assert reply.cookies() == {}
    assert reply.json["variants"] == {}
    drain(w)
    assert origin.stats()["event_posts"] == 0
    assert origin.stats()["counts"].get("segment-token", 0) == 0
    urls = [e["url"] for e in w.call("cache")["entries"]]
    assert urls == [f"{SHOP}/__p13n/v1/home/{ANON_HSEG}/en-us/desktop/-/g0"]


def test_the_global_holdout_gets_the_anonymous_list_and_says_so(
    worker, origin: StandinOrigin
) -> None:
    w = worker(config_doc(holdout=1.0, experiments=[experiment()]))
    reply = get(w, cookie=shopper_cookie(token=valid_token()))
    assert reply.json["variants"] == {"p13n-holdout": "holdout"}
    assert not any(i.startswith("TREN-") for i in reply.items)  # in no experiment
    drain(w)
    urls = [e["url"] for e in w.call("cache")["entries"]]
    assert urls == [f"{SHOP}/__p13n/v1/home/{ANON_HSEG}/en-us/desktop/p13n-holdout.0/g0"]
    assert origin.stats()["event_posts"] == 1  # its exposure, counted as the holdout's


def test_variant_routes_to_another_list_and_key(worker) -> None:
    w = worker(config_doc(experiments=[experiment()]))
    reply = get(w, cookie=shopper_cookie(token=valid_token()))
    assert reply.items[0].startswith("TREN-")
    drain(w)
    url = w.call("cache")["entries"][0]["url"]
    assert url.endswith("/rail-algo.1/g0")


def test_personal_route_goes_to_the_origin_first(worker, origin: StandinOrigin) -> None:
    w = worker()
    reply = get(w, "/p13n/v1/rail/buy-again?k=2", cookie=shopper_cookie(token=valid_token()))
    assert reply.detail == "origin"
    assert "fwd=bypass" in reply.header("cache-status")
    assert reply.items == ["PERS-000", "PERS-001"]
    assert reply.json["items"][0]["name"] == "Item PERS-000"  # the origin's labels, kept
    assert reply.json["items"][0]["price"] == 4.5 and "name" not in reply.json["items"][1]
    drain(w)
    assert w.call("cache")["entries"] == []  # per-shopper answers are never stored


def test_personal_route_falls_back_to_the_list_when_the_origin_is_slow(
    worker, origin: StandinOrigin
) -> None:
    cfg = config_doc()
    cfg["routes"]["buy-again"]["origin_budget_ms"] = 200
    w = worker(cfg)
    origin.control("mode", {"mode": "slow", "delay_ms": 600})
    reply = get(w, "/p13n/v1/rail/buy-again", cookie=shopper_cookie(token=valid_token()))
    assert reply.status == 200
    assert reply.detail == "miss"


def test_variant_sends_the_fallback_to_another_origin_path(worker) -> None:
    exp = experiment(
        variations=[{"name": "control"}, {"name": "alt", "origin_path": "/v2/alt-recommendations"}]
    )
    w = worker(config_doc(experiments=[exp]))
    reply = get(w, "/p13n/v1/rail/buy-again", cookie=shopper_cookie(token=valid_token()))
    assert reply.detail == "origin"
    assert reply.items == ["ALT-001"]


def test_other_paths_go_to_the_origin(worker, origin: StandinOrigin) -> None:
    w = worker()
    reply = get(w, "/account/orders?page=2")
    assert reply.status == 200
    assert reply.json == {"origin_saw": "/account/orders", "query": "page=2"}
    assert origin.stats()["counts"]["passthrough"] == 1


def test_a_rail_the_config_does_not_name_goes_to_the_origin(worker, origin: StandinOrigin) -> None:
    w = worker()
    reply = get(w, "/p13n/v1/rail/made-up", cookie=shopper_cookie(token=valid_token()))
    assert reply.json == {"origin_saw": "/p13n/v1/rail/made-up", "query": ""}
    assert w.call("cache")["entries"] == [] and origin.stats()["counts"].get("list", 0) == 0


def test_the_trace_follows_the_request_to_the_origin_and_the_exposures(
    worker, origin: StandinOrigin
) -> None:
    w = worker(config_doc(experiments=[experiment()]))
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    get(w, cookie=shopper_cookie(token=valid_token()), traceparent=trace)
    get(w, cookie=shopper_cookie(token=valid_token()), traceparent="not-a-trace")
    drain(w)
    stats = origin.stats()
    assert stats["seen_traces"] == [trace]  # the miss fetched the list; the second was a hit
    assert [e.get("traceparent", "") for e in stats["events"]] == [trace, ""]


def test_a_burst_on_a_stale_entry_revalidates_once(worker, origin: StandinOrigin) -> None:
    w = worker()
    cookie = shopper_cookie(token=valid_token())
    get(w, cookie=cookie)
    drain(w)
    w.call("advance", ms=90_000)  # stale
    origin.control("mode", {"mode": "slow", "delay_ms": 300})  # refreshes overlap the burst
    details = [get(w, cookie=cookie).detail for _ in range(5)]
    drain(w)
    assert details[0] == "stale-while-revalidate"
    assert origin.stats()["counts"]["list"] == 2  # the first fill and one refresh


def test_the_default_list_logs_no_exposure(worker, origin: StandinOrigin) -> None:
    w = worker(config_doc(experiments=[experiment()]))
    cookie = shopper_cookie(token=valid_token())
    get(w, cookie=cookie)
    drain(w)
    assert len(origin.stats()["events"]) == 1
    origin.control("mode", {"mode": "down"})
    w.call("advance", ms=4_000_000)  # past stale-if-error: the default list
    assert get(w, cookie=cookie).detail == "default"
    drain(w)
    assert len(origin.stats()["events"]) == 1  # no variant was shown: nothing to count


def test_an_opt_out_among_heavy_analytics_cookies_is_honoured(
    worker, origin: StandinOrigin
) -> None:
    w = worker(config_doc(experiments=[experiment()]))
    analytics = "; ".join(f"_ga{i}={'v' * 100}" for i in range(90))  # 9 KB of cookies
    reply = get(w, cookie=f"{analytics}; p13n_optout=1; {shopper_cookie(token=valid_token())}")
    drain(w)
    assert reply.status == 200 and reply.cookies() == {}  # no id minted
    assert reply.json["variants"] == {} and origin.stats()["events"] == []


def test_head_on_a_rail_is_answered_at_the_edge(worker, origin: StandinOrigin) -> None:
    w = worker()
    r = w.call(
        "fetch",
        url=SHOP + "/p13n/v1/rail/home",
        method="HEAD",
        headers=[["cookie", shopper_cookie(token=valid_token())]],
    )
    assert r["status"] == 200 and r["body"] == ""
    assert origin.stats()["counts"].get("passthrough", 0) == 0


def test_exposures_carry_the_collectors_site_key(worker, origin: StandinOrigin) -> None:
    w = worker(config_doc(experiments=[experiment()]), COLLECTOR_SITE_KEY="pk_shop_1")
    get(w, cookie=shopper_cookie(token=valid_token()))
    drain(w)
    assert origin.stats()["seen_site_keys"] == ["pk_shop_1"]


def test_an_unreachable_origin_is_a_problem_for_other_paths_and_never_for_rails(
    worker, origin: StandinOrigin
) -> None:
    w = worker(ORIGIN_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    other = get(w, "/account/orders")
    assert other.status == 502
    assert other.header("content-type") == "application/problem+json"
    assert other.json["type"] == "https://p13n.invalid/problems/origin-unavailable"
    assert other.json["status"] == 502
    assert other.header("cache-status") == "p13n-edge; fwd=bypass; detail=origin-unavailable"
    rail = get(w, cookie=shopper_cookie(token=valid_token()))
    assert (rail.status, rail.detail) == (200, "default")


def test_unusable_settings_still_answer_rails_with_a_200(worker, pyodide_worker) -> None:
    w = worker(SEGMENT_KEYS="not a key ring")
    reply = get(w, cookie=shopper_cookie(token=valid_token()))
    assert (reply.status, reply.detail, reply.fault) == (200, "default", "config-error")
    assert reply.json == {"items": [], "variants": {}, "degraded": True}
    assert pyodide_worker.log_path is not None
    assert "SEGMENT_KEYS" in pyodide_worker.log_path.read_text()


def test_merchandising_rules_from_the_config_apply_in_the_worker(worker) -> None:
    rules = [
        {"name": "deal", "kind": "pin", "skus": ["PINNED-1"], "position": 1, "routes": ["home"]},
        {"name": "recall", "kind": "block", "skus": [default_list_items("control")[0]["item"]]},
    ]
    w = worker(config_doc(rules=rules))
    reply = get(w, cookie=shopper_cookie(token=valid_token()))
    assert reply.status == 200
    assert reply.items[0] == "PINNED-1"
    assert reply.json["items"][0]["reason"] == "pinned by merchandising rule deal"
    assert default_list_items("control")[0]["item"] not in reply.items
