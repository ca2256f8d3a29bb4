"""Pipeline health API: lag per partition, dead letters, requeue (re-validated), history."""

from __future__ import annotations

import msgpack
import orjson
import pytest

from origin.admin.pipeline import edge_history
from segmenter.schema import GROUP, partition_of
from tests.support.data import ADMIN, KEYS, MERCH, NOW_MS, SERVICE, bearer

pytestmark = pytest.mark.anyio
H = bearer(ADMIN)


def _letter(r, doc, *, source: str, reason: str = "x: bad") -> str:
    raw = msgpack.packb(doc) if source == "processor" else orjson.dumps(doc)
    fields = {"reason": reason, "field": "x", "raw": raw, "source": source, "user": "",
              "received_ms": NOW_MS}  # fmt: skip
    return r.xadd(KEYS.dlq, fields).decode()


def _event(user: str = "u-1", **over):
    return {"v": 1, "event_id": "e-1", "type": "view", "user": user, "item": "S1",
            "ts": NOW_MS, **over}  # fmt: skip


async def test_partitions_report_lag_pending_and_meta(client, redis_client):
    redis_client.xgroup_create(KEYS.stream(0), GROUP, id="0", mkstream=True)
    for _ in range(3):
        redis_client.xadd(KEYS.stream(0), {"e": b"x"})
    redis_client.xreadgroup(GROUP, "c1", {KEYS.stream(0): ">"}, count=1)  # one pending
    redis_client.hset(KEYS.partition_meta(0), mapping={"offset": "1-0", "owner": "p1"})
    r = await client.get("/v1/admin/pipeline", headers=H)
    assert r.status_code == 200, r.text
    doc = r.json()
    p0, p1 = doc["partitions"]
    assert (p0["length"], p0["lag"], p0["pending"], p0["behind"]) == (3, 2, 1, 3)
    assert (p0["offset"], p0["owner"]) == ("1-0", "p1")
    assert (p1["length"], p1["behind"]) == (0, 0)  # no stream yet: zeros, not an error
    assert doc["dlq"] == {"depth": 0} and doc["history"]["window_s"] == 900


async def test_only_admins_see_the_pipeline(client):
    assert (await client.get("/v1/admin/pipeline", headers=bearer(MERCH))).status_code == 403
    assert (await client.get("/v1/admin/dlq")).status_code == 401
    r = await client.get("/v1/admin/pipeline?window_s=5", headers=H)
    assert r.status_code == 400 and r.json()["field"] == "window_s"


async def test_dead_letters_newest_first_with_the_original_event(client, redis_client):
    first = _letter(redis_client, _event(), source="processor")
    second = _letter(redis_client, {"v": 1, "type": "view"}, source="collector")
    doc = (await client.get("/v1/admin/dlq?limit=1", headers=H)).json()
    assert doc["depth"] == 2 and [e["id"] for e in doc["entries"]] == [second]
    assert orjson.loads(doc["entries"][0]["preview"]) == {"v": 1, "type": "view"}
    page2 = (await client.get(f"/v1/admin/dlq?before={doc['next']}", headers=H)).json()
    assert [e["id"] for e in page2["entries"]] == [first]
    assert orjson.loads(page2["entries"][0]["preview"])["user"] == "u-1"


async def test_requeue_moves_a_valid_event_back_to_its_partition(client, redis_client):
    entry = _letter(redis_client, _event("u-7"), source="collector")
    r = await client.post(f"/v1/admin/dlq/{entry}/requeue", headers=H)
    assert r.status_code == 200, r.text
    partition = partition_of("u-7", 2)
    assert r.json()["partition"] == partition
    ((_, fields),) = redis_client.xrange(KEYS.stream(partition))
    assert msgpack.unpackb(fields[b"e"])["event_id"] == "e-1"  # msgpack, as the stream wants
    assert redis_client.xlen(KEYS.dlq) == 0
    audit = redis_client.xrevrange(KEYS.audit, count=1)[0][1]
    assert audit[b"action"] == b"dlq.requeue" and b"u-7" not in audit[b"before"]
    again = await client.post(f"/v1/admin/dlq/{entry}/requeue", headers=H)
    assert again.status_code == 404


async def test_a_processor_dead_letter_goes_back_byte_for_byte(client, redis_client):
    raw = msgpack.packb(_event("u-9"))
    entry = _letter(redis_client, _event("u-9"), source="processor")
    assert (await client.post(f"/v1/admin/dlq/{entry}/requeue", headers=H)).status_code == 200
    ((_, fields),) = redis_client.xrange(KEYS.stream(partition_of("u-9", 2)))
    assert fields[b"e"] == raw


async def test_still_invalid_events_are_refused_with_the_reason(client, redis_client):
    entry = _letter(redis_client, _event(user=""), source="collector")
    r = await client.post(f"/v1/admin/dlq/{entry}/requeue", headers=H)
    assert r.status_code == 409 and r.json()["field"] == "user"
    assert "still invalid" in r.json()["detail"]
    assert redis_client.xlen(KEYS.dlq) == 1
    bad_id = await client.post("/v1/admin/dlq/not-an-id/requeue", headers=H)
    assert bad_id.status_code == 400


async def test_heartbeats_build_the_hit_ratio_history(client, redis_client, clock):
    for hit, stale, miss in ((0, 0, 0), (70, 10, 20), (140, 20, 40)):
        body = {"edge_id": "edge-a", "counts": {"hit": hit, "stale": stale, "miss": miss}}
        r = await client.post("/v1/edge/heartbeat", json=body, headers=bearer(SERVICE))
        assert r.status_code == 204
        clock.advance(30)
    doc = (await client.get("/v1/admin/pipeline?window_s=300", headers=H)).json()
    filled = [b for b in doc["history"]["buckets"] if b["answers"]]
    assert [b["answers"] for b in filled] == [100, 100]
    assert all(b["hit_ratio"] == 0.8 and b["freshness"] == 0.875 for b in filled)
    assert doc["edges"][0]["edge_id"] == "edge-a" and doc["edges"][0]["live"]


def test_history_counts_an_edge_restart_from_zero() -> None:
    now, window = 1_000_000, 300_000
    samples = [
        (now - 100_000, "a", {"hit": 50, "miss": 50}),
        (now - 50_000, "a", {"hit": 10, "miss": 0}),  # restarted: counters went down
        (now - 60_000, "b", {"hit": 5, "miss": 5}),  # first sample of b: no difference yet
    ]
    buckets = edge_history(samples, now, window)
    assert len(buckets) == 30 and buckets[-1]["ms"] == now - 10_000
    filled = [b for b in buckets if b["answers"]]
    assert [(b["answers"], b["hit_ratio"]) for b in filled] == [(10, 1.0)]


async def test_requeue_gives_a_collector_letter_back_the_shopper_it_was_for(client, redis_client):
    doc = {k: v for k, v in _event().items() if k != "user"}  # the user came from the cookie
    fields = {"reason": "x: bad", "field": "x", "raw": orjson.dumps(doc), "source": "collector",
              "user": "u-5", "received_ms": NOW_MS}  # fmt: skip
    entry = redis_client.xadd(KEYS.dlq, fields).decode()
    r = await client.post(f"/v1/admin/dlq/{entry}/requeue", headers=H)
    assert r.status_code == 200, r.text
    ((_, stored),) = redis_client.xrange(KEYS.stream(partition_of("u-5", 2)))
    assert msgpack.unpackb(stored[b"e"])["user"] == "u-5"


async def test_the_last_reconciliation_is_in_the_overview(client, redis_client):
    assert (await client.get("/v1/admin/pipeline", headers=H)).json()["reconcile"] is None
    report = {"from_ms": 0, "to_ms": NOW_MS, "ran_ms": NOW_MS, "compared": {"popularity": 9},
              "differences": {"popularity": 1, "covisitation": 0, "experiments": 0},
              "sample": [], "skipped_partitions": [], "repaired": 0}  # fmt: skip
    redis_client.set(KEYS.reconcile_report, orjson.dumps(report))
    doc = (await client.get("/v1/admin/pipeline", headers=H)).json()
    assert doc["reconcile"] == report
