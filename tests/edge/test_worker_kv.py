"""The Worker's edge config from its ``EDGE_CONFIG`` Workers KV binding, in real Pyodide.

The KV namespace is the harness's in-memory double (Workers KV itself cannot run here); the
SDK's own binding wrapper sits between it and the Worker, as on Cloudflare. The stand-in
origin is used because these tests inject faults (a purge the KV copy has not seen, the origin
down). A KV document is as old as its ``generated_at_ms``: one older than its max-age never
counts as fresh, so a cold isolate cannot miss a hard purge by trusting it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from origin.kv import EDGE_CONFIG_KEY
from tests.edge.rail_requests import config_doc, drain, shopper_cookie, valid_token
from tests.edge.rail_requests import worker_get as get
from tests.support.edge import SEGMENT_KEYS
from tests.support.standin_origin import default_list_items
from tests.support.worker import StandinOrigin, WorkerHarness

pytestmark = pytest.mark.pyodide


@pytest.fixture
def isolate(pyodide_worker: WorkerHarness, origin: StandinOrigin):
    """Start a new isolate (the cache and KV namespace live on) with EDGE_CONFIG bound."""
    pyodide_worker.call("clear_cache")
    pyodide_worker.call("kv_put", key=EDGE_CONFIG_KEY, value=None)

    def start() -> WorkerHarness:
        env = {"ORIGIN_URL": origin.url, "SEGMENT_KEYS": SEGMENT_KEYS, "ORIGIN_TIMEOUT_MS": "800"}
        pyodide_worker.call("new_isolate", vars=env, bind_kv=True)
        return pyodide_worker

    return start


def put_kv(w: WorkerHarness, age_ms: int, **overrides: Any) -> None:
    doc = config_doc(generated_at_ms=w.call("now") - age_ms, **overrides)
    w.call("kv_put", key=EDGE_CONFIG_KEY, value=json.dumps(doc))


def test_an_old_kv_document_cannot_hide_a_hard_purge(isolate, origin: StandinOrigin) -> None:
    origin.control("config", config_doc())
    w = isolate()
    cookie = shopper_cookie(token=valid_token())
    assert get(w, cookie=cookie).detail == "miss"
    drain(w)  # the entry is stored with generation 0 of its tags
    purged = default_list_items("control")[0]["item"].lower()
    origin.control("config", config_doc(generations={f"sku:{purged}": [1, 1]}))
    put_kv(w, age_ms=10 * 60_000)  # KV still holds the document from before the purge
    w = isolate()  # a cold isolate
    reply = get(w, cookie=cookie)
    assert reply.detail == "miss"  # the origin's config, not the old copy: the entry is gone
    assert origin.stats()["counts"]["config"] == 2


def test_a_fresh_kv_document_answers_without_the_origin(isolate, origin: StandinOrigin) -> None:
    origin.control("mode", {"mode": "down"})
    w = isolate()
    put_kv(w, age_ms=1_000, default_items=[{"item": "KV-1", "score": 1.0}])
    reply = get(w, cookie=shopper_cookie(token=valid_token()))
    assert reply.status == 200 and reply.detail == "default"
    assert reply.items == ["KV-1"]
    assert origin.stats()["counts"].get("config", 0) == 0  # the cold start did not ask


def test_an_old_kv_document_is_the_fallback_and_is_refreshed(
    isolate, origin: StandinOrigin
) -> None:
    origin.control("mode", {"mode": "down"})
    w = isolate()
    put_kv(w, age_ms=10 * 60_000, default_items=[{"item": "KV-1", "score": 1.0}])
    first = get(w, cookie=shopper_cookie(token=valid_token()))
    assert first.items == ["KV-1"]  # older than its max-age, yet better than nothing
    drain(w)
    origin.control("mode", {"mode": "ok"})
    origin.control("config", config_doc(default_items=[{"item": "ORIGIN-1", "score": 1.0}]))
    second = get(w, cookie=shopper_cookie(token=valid_token()))
    assert second.pending >= 1  # not fresh: the next request refreshes it in the background
    drain(w)
    assert origin.stats()["counts"]["config"] == 2  # the cold start's try, then the refresh
