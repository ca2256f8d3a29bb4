"""The rail flow on in-memory fakes of its three ports: every decision and every fallback,
fast, with a fake clock. (The adapters themselves are checked by test_flow_contract.py,
the Worker in real Pyodide and the self-hosted edge against real processes.)"""

from __future__ import annotations

import json
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import replace
from typing import Any

import pytest

import edge.flow
from cache_keys.keys import CacheKey
from cache_keys.wire import SEGMENT_COOKIE, SHOPPER_COOKIE, segment_list_to_json
from cache_keys.wire.config import SegmentList
from edge.entry import Entry
from edge.errors import OriginError
from edge.flow import RailFlow
from edge.ports import Ports, RailReply, StoredEntry
from edge.request import REQUEST_HEADERS
from tests.support.edge import (
    HSEG,
    NOW_MS,
    SHOPPER,
    config,
    experiment,
    items,
    make_settings,
    token,
)

pytestmark = pytest.mark.anyio
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ROUTES = {"home": {"max_age_s": 60, "swr_s": 300, "sie_s": 3600, "k": 5}}
DEFAULTS = [{"item": "DEFAULT-1", "score": 1.0}]


class FakeOrigin:
    """Answers by URL prefix: a (status, body) pair or an exception to raise."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, str] | BaseException] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.posted: list[dict[str, Any]] = []

    def list_ok(self, hseg: str = HSEG, n: int = 20) -> None:
        sl = SegmentList(
            hseg=hseg, variant="control", etag='"l"', generated_at_ms=0, items=tuple(items(n))
        )
        self.answers["/v1/segments/"] = (200, json.dumps(segment_list_to_json(sl)))

    def calls(self, prefix: str) -> int:
        return sum(1 for url, _ in self.seen if prefix in url)

    async def get(self, url: str, headers: Mapping[str, str], budget_ms: int) -> tuple[int, str]:
        self.seen.append((url, dict(headers)))
        for prefix, answer in self.answers.items():
            if prefix in url:
                if isinstance(answer, BaseException):
                    raise answer
                return answer
        return 404, "{}"

    async def post_events(self, batch: dict[str, Any]) -> None:
        self.posted.append(batch)


class FakeCache:
    def __init__(self) -> None:
        self.entries: dict[str, StoredEntry] = {}
        self.fail_get: BaseException | None = None
        self.fail_put: BaseException | None = None

    async def get(self, key: CacheKey) -> Entry | None:
        if self.fail_get is not None:
            raise self.fail_get
        stored = self.entries.get(key.path)
        return stored.entry if stored else None

    async def put(self, key: CacheKey, stored: StoredEntry) -> None:
        if self.fail_put is not None:
            raise self.fail_put
        self.entries[key.path] = stored


class FakeBackground:
    def __init__(self) -> None:
        self.work: list[Coroutine[Any, Any, None]] = []

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.work.append(work)

    async def drain(self) -> int:
        done = 0
        while self.work:
            await self.work.pop(0)
            done += 1
        return done


class Rig:
    def __init__(self, **cfg: Any) -> None:
        self.now = NOW_MS
        self.flow = RailFlow(make_settings(), lambda: self.now)
        self.origin, self.cache, self.bg = FakeOrigin(), FakeCache(), FakeBackground()
        self.origin.list_ok()
        self.config = config(**{"routes": ROUTES, "default_items": DEFAULTS, **cfg})

    async def get(self, route: str = "home", cookie: str | None = None, **headers: str) -> Reply:
        hs = {
            "cookie": cookie or f"{SHOPPER_COOKIE.name}={SHOPPER}; {SEGMENT_COOKIE.name}={token()}"
        }
        hs.update({k.replace("_", "-"): v for k, v in headers.items()})
        ports = Ports(self.origin, self.cache, self.bg)
        return Reply(await self.flow.answer(route, hs, "", self.config, ports))


class Reply:
    def __init__(self, reply: RailReply) -> None:
        self.reply = reply
        self.headers = dict(reply.headers)
        self.status = self.headers["cache-status"]
        self.detail = self.status.rsplit("detail=", 1)[1]
        self.doc = json.loads(reply.answer.body)
        self.items = [i["item"] for i in self.doc["items"]]


async def test_miss_stores_then_hit_serves_without_the_origin() -> None:
    rig = Rig()
    first = await rig.get()
    assert first.detail == "miss" and "; stored;" in first.status and len(first.items) == 5
    second = await rig.get()
    assert second.detail == "hit" and second.items == first.items
    assert rig.origin.calls("/v1/segments/") == 1


async def test_a_burst_on_a_stale_entry_revalidates_once_per_key() -> None:
    rig = Rig()
    await rig.get()
    rig.now += 90_000  # past max-age, inside stale-while-revalidate
    details = [(await rig.get()).detail for _ in range(5)]
    assert details == ["stale-while-revalidate"] * 5
    assert rig.flow.revalidations == 1 and await rig.bg.drain() == 1
    assert (await rig.get()).detail == "hit"
    assert rig.origin.calls("/v1/segments/") == 2


async def test_keys_sharing_one_list_are_each_revalidated() -> None:
    rig = Rig()
    mobile = {"user_agent": "Mozilla/5.0 (iPhone) Mobile"}
    await rig.get()
    await rig.get(**mobile)
    rig.now += 90_000
    await rig.get()
    await rig.get(**mobile)
    assert rig.flow.revalidations == 2  # one per cache key: both entries get refreshed
    assert await rig.bg.drain() == 2


async def test_a_stale_if_error_answers_exposures_are_marked_degraded() -> None:
    rig = Rig(experiments=[experiment(routes=["home"])])
    await rig.get()
    rig.origin.answers["/v1/segments/"] = (503, "{}")
    rig.now += 400_000
    assert (await rig.get()).detail == "stale-if-error"
    await rig.bg.drain()
    fresh, stale, marker = [e for b in rig.origin.posted for e in b["events"]]
    assert "degraded" not in fresh and stale["event_id"] == fresh["event_id"]
    assert marker["degraded"] is True and marker["v"] == 4
    assert marker["event_id"] == fresh["event_id"] + "-d"


async def test_expired_entry_and_a_failing_origin_is_stale_if_error() -> None:
    rig = Rig()
    fresh = await rig.get()
    rig.origin.answers["/v1/segments/"] = (503, "{}")
    rig.now += 400_000  # past stale-while-revalidate, inside stale-if-error
    stale = await rig.get()
    assert stale.detail == "stale-if-error" and stale.doc["degraded"] is True
    assert stale.items == fresh.items


@pytest.mark.parametrize(
    ("answer", "fwd"),
    [
        ((503, "{}"), "; fwd-status=503;"),
        ((200, "not json"), "; fwd-status=200;"),  # the origin answered: one rule, both edges
        ((200, '{"v": 1}'), "; fwd-status=200;"),
        (OriginError(0, "origin"), None),
        (TimeoutError(), None),  # any exception of the origin port falls back alike
        (KeyError("a bug in an adapter"), None),
    ],
)
async def test_a_failing_origin_without_an_entry_gives_the_default_list(answer, fwd) -> None:
    rig = Rig()
    rig.origin.answers["/v1/segments/"] = answer
    reply = await rig.get()
    assert reply.detail == "default" and reply.items == ["DEFAULT-1"]
    assert reply.doc["degraded"] is True
    if fwd is None:
        assert "fwd-status" not in reply.status
    else:
        assert fwd in reply.status
    assert rig.cache.entries == {}


async def test_a_list_of_another_segment_is_not_stored() -> None:
    rig = Rig()
    rig.origin.list_ok(hseg="s" + HSEG[1:])
    reply = await rig.get()
    assert reply.detail == "default" and "fwd-status=200" in reply.status
    assert rig.cache.entries == {}


async def test_a_cache_that_cannot_read_is_a_miss_that_says_so(caplog) -> None:
    rig = Rig()
    rig.cache.fail_get = OSError(f"cache down for {SHOPPER}")
    reply = await rig.get()
    assert reply.detail == "miss/cache-error" and "stored" not in reply.status
    assert len(reply.items) == 5
    assert "cache read: OSError" in caplog.text and SHOPPER not in caplog.text


async def test_a_cache_that_cannot_write_still_answers_the_list() -> None:
    rig = Rig()
    rig.cache.fail_put = RuntimeError("full")
    first = await rig.get()
    assert first.detail == "miss/cache-error" and "stored" not in first.status
    assert len(first.items) == 5
    rig.cache.fail_put = None
    assert (await rig.get()).detail == "miss"


async def test_a_failing_cache_and_origin_give_the_default_list() -> None:
    rig = Rig()
    rig.cache.fail_get = OSError("cache down")
    rig.origin.answers["/v1/segments/"] = (503, "{}")
    reply = await rig.get()
    assert reply.detail == "default/cache-error" and "fwd-status=503" in reply.status


async def test_a_bug_in_the_decision_gives_the_plain_default_list(monkeypatch, caplog) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError(f"decide choked on {SHOPPER}")

    monkeypatch.setattr(edge.flow, "decide", broken)
    rig = Rig(experiments=[experiment()])
    with caplog.at_level(logging.ERROR, "p13n.edge.flow"):
        reply = await rig.get()
    assert reply.detail == "default/core-error" and reply.items == ["DEFAULT-1"]
    assert reply.doc == {
        "items": [{"item": "DEFAULT-1", "score": 1.0, "reason": "default"}],
        "variants": {},
        "degraded": True,
    }
    assert (
        "set-cookie" not in reply.headers and reply.headers["cache-control"] == "private, no-store"
    )
    assert "decision: ValueError" in caplog.text and SHOPPER not in caplog.text
    assert rig.flow.faults == 1 and rig.bg.work == []  # no exposure for the default list


async def test_a_bug_after_the_decision_gives_the_default_list(monkeypatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError

    rig = Rig()
    await rig.get()
    monkeypatch.setattr(edge.flow, "freshness", broken)
    reply = await rig.get()
    assert reply.detail == "default/core-error" and reply.items == ["DEFAULT-1"]


async def test_personal_routes_ask_the_origin_first_and_fall_back_to_the_list() -> None:
    rig = Rig(routes={**ROUTES, "buy-again": {"personal": True, "k": 2}})
    rail = {"v": 1, "items": [{"item": "P-1", "score": 1.0, "reason": "personal"}]}
    rig.origin.answers["/v1/recommendations"] = (200, json.dumps(rail))
    reply = await rig.get("buy-again")
    assert reply.detail == "origin" and reply.items == ["P-1"] and rig.cache.entries == {}
    rig.origin.answers["/v1/recommendations"] = (200, "<html>")
    assert (await rig.get("buy-again")).detail == "miss"


async def test_a_personal_rail_that_explains_itself_is_served_not_replaced() -> None:
    # the origin says why in words ("due again: ..."); that is a rail, not a reason to fall back
    rig = Rig(routes={**ROUTES, "buy-again": {"personal": True, "k": 2}})
    why = "due again: you buy this every ~9 days"
    rail = {"v": 1, "items": [{"item": "P-1", "score": 1.0, "reason": why}]}
    rig.origin.answers["/v1/recommendations"] = (200, json.dumps(rail))
    reply = await rig.get("buy-again")
    assert reply.detail == "origin" and reply.items == ["P-1"]


async def test_every_origin_request_carries_the_trace_and_only_the_shoppers_id() -> None:
    rig = Rig(routes={**ROUTES, "buy-again": {"personal": True}})
    grant = {"v": 1, "token": token(), "expires_at_s": NOW_MS // 1000 + 86400}
    rail = {"v": 1, "items": [{"item": "P-1", "score": 1.0, "reason": "personal"}]}
    rig.origin.answers["/v1/segment-token"] = (200, json.dumps(grant))
    rig.origin.answers["/v1/recommendations"] = (200, json.dumps(rail))
    no_segment = f"{SHOPPER_COOKIE.name}={SHOPPER}; other=x"
    assert (await rig.get("buy-again", cookie=no_segment, traceparent=TRACE)).detail == "origin"
    await rig.get("home", traceparent=TRACE)  # a miss
    rig.now += 90_000
    await rig.get("home", traceparent=TRACE)  # stale: the revalidation keeps the trace
    assert await rig.bg.drain() == 1
    paths = [url.split("/v1/")[1].split("?")[0].split("/")[0] for url, _ in rig.origin.seen]
    assert paths == ["segment-token", "recommendations", "segments", "segments"]
    assert all(h["traceparent"] == TRACE for _, h in rig.origin.seen)
    personal = [h for url, h in rig.origin.seen if "segments" not in url]
    assert all(h["cookie"] == f"{SHOPPER_COOKIE.name}={SHOPPER}" for h in personal)
    assert all("cookie" not in h for url, h in rig.origin.seen if "segments" in url)


async def test_exposures_go_to_the_background_except_for_the_default_list() -> None:
    rig = Rig(experiments=[experiment(routes=["home"])])
    await rig.get()
    await rig.bg.drain()
    assert [e["type"] for b in rig.origin.posted for e in b["events"]] == ["exposure"]
    rig.origin.answers["/v1/segments/"] = (503, "{}")
    rig.cache.entries.clear()
    assert (await rig.get()).detail == "default"
    assert await rig.bg.drain() == 0


async def test_an_empty_list_is_never_stored_while_a_default_exists() -> None:
    rig = Rig()
    rig.origin.list_ok(n=0)  # a cold start: the segment's list is still empty
    first = await rig.get()
    assert first.detail == "default" and first.items == ["DEFAULT-1"]
    assert rig.cache.entries == {}
    second = await rig.get()  # not a hit on an empty list: the origin is asked again
    assert second.detail == "default" and rig.origin.calls("/v1/segments/") == 2
    rig.origin.list_ok(n=20)
    assert (await rig.get()).detail == "miss"
    rig.origin.list_ok(n=0)
    rig.now += 90_000  # stale: the background refresh meets an empty list again
    stale = await rig.get()
    assert stale.detail == "stale-while-revalidate" and len(stale.items) == 5
    assert await rig.bg.drain() == 1
    stored = next(iter(rig.cache.entries.values()))
    assert len(stored.entry.seglist.items) == 20  # the non-empty entry was kept


async def test_an_empty_list_is_stored_when_there_is_no_default() -> None:
    rig = Rig(default_items=[])
    rig.origin.list_ok(n=0)
    assert (await rig.get()).detail == "miss"
    assert len(rig.cache.entries) == 1


async def test_no_segment_token_call_for_a_shopper_id_minted_by_this_request() -> None:
    rig = Rig()
    grant = {"v": 1, "token": token(), "expires_at_s": NOW_MS // 1000 + 86400}
    rig.origin.answers["/v1/segment-token"] = (200, json.dumps(grant))
    for cookie in ("", "p13n_sid=not-a-valid-id", "other=1"):
        reply = await rig.get(cookie=cookie or "x=1")
        assert reply.headers.get("set-cookie", "").startswith(SHOPPER_COOKIE.name)
    assert rig.origin.calls("/v1/segment-token") == 0
    known = f"{SHOPPER_COOKIE.name}={SHOPPER}"  # a known id without a segment cookie
    await rig.get(cookie=known)
    assert rig.origin.calls("/v1/segment-token") == 1


def _rule(**kw: Any) -> dict[str, Any]:
    return {"name": "deal", "kind": "pin", "skus": ["SKU-19"], "position": 1, **kw}


async def test_merchandising_rules_apply_to_hits_misses_and_the_default_list() -> None:
    rig = Rig(rules=[_rule(), {"name": "recall", "kind": "block", "skus": ["SKU-0"]}])
    miss = await rig.get()
    assert miss.detail == "miss"
    assert miss.items[0] == "SKU-19"
    assert miss.doc["items"][0]["reason"] == "pinned by merchandising rule deal"
    assert "SKU-0" not in miss.items
    hit = await rig.get()
    assert hit.detail == "hit"
    assert hit.items == miss.items
    rig.cache.entries.clear()
    rig.origin.answers["/v1/segments/"] = OriginError(503, "origin")
    default = await rig.get()
    assert default.detail == "default"
    assert default.items[0] == "SKU-19"  # a pin holds on the default list too


async def test_a_rule_window_opening_changes_a_memoized_hit() -> None:
    rig = Rig(rules=[_rule(start_ms=NOW_MS + 1000)])
    first = await rig.get()
    assert first.items[0] != "SKU-19"
    assert (await rig.get()).detail == "hit"
    rig.now = NOW_MS + 1000
    later = await rig.get()
    assert later.detail == "hit"
    assert later.items[0] == "SKU-19"


async def test_a_rule_scoped_to_another_segment_or_route_does_nothing() -> None:
    rig = Rig(rules=[_rule(segments=["a" * 16]), _rule(name="pdp-only", routes=["pdp"])])
    assert "SKU-19" not in (await rig.get()).items


class _Recording(dict[str, str]):
    """Request headers that note every name the flow asks for (iterating counts as all)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)

    def __iter__(self) -> Any:
        self.read.add("*every header*")
        return super().__iter__()

    def items(self) -> Any:  # type: ignore[override]
        self.read.add("*every header*")
        return super().items()


async def test_the_flow_reads_only_the_headers_the_worker_copies() -> None:
    # The Worker copies only edge.request.REQUEST_HEADERS across the JS/Python boundary: a
    # header read anywhere else in the flow would silently be missing there.
    rig = Rig(holdout=0.5)
    cookie = f"{SHOPPER_COOKIE.name}={SHOPPER}; {SEGMENT_COOKIE.name}={token()}"
    read: set[str] = set()
    for extra in ({}, {"sec-gpc": "1"}, {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}):
        for _ in range(2):  # a miss, then a hit
            hs = _Recording({"cookie": cookie, "user-agent": "Mozilla/5.0", **extra})
            await rig.flow.answer(
                "home", hs, "k=3", rig.config, Ports(rig.origin, rig.cache, rig.bg)
            )
            await rig.bg.drain()
            read |= hs.read
        rig.now += 3_600_000  # then stale or expired: a revalidation or a refetch
    assert read <= set(REQUEST_HEADERS), read - set(REQUEST_HEADERS)
    assert {"cookie", "user-agent", "accept-language", "traceparent"} <= read


async def test_the_rendered_memo_keeps_only_answers_it_can_still_serve() -> None:
    """A context-free body is memoized per key and k for the entry and config it was made
    from: a new config (one per list rebuild) or a refreshed entry replaces it. Kept beside
    it instead, dead bodies piled up to the memo's bound in every process (2,740 of them after
    a simulated 20 minutes at 40 requests/s on 30 keys, for 20 live)."""
    rig = Rig()
    first = await rig.get()
    for n in range(40):
        rig.config = replace(rig.config, etag=f'"t{n}"')
        if n % 10 == 9:  # now and then the entry goes stale and is refreshed too
            rig.now += 90_000
            await rig.get()
            await rig.bg.drain()
        reply = await rig.get()
        assert reply.detail == "hit" and reply.items == first.items
    assert len(rig.flow._rendered) == 1
