"""Right to erasure: keys, tombstone, DLQ entries, the archive, the audit entry."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from segmenter import event
from segmenter.event import Event
from segmenter.schema import partition_of, tombstone_digest
from tests.support import data
from tests.support.data import ADMIN, MERCH, bearer, sid

pytestmark = pytest.mark.anyio


def _archive(settings, docs: list[dict]) -> Path:
    """One archive file in the segmenter's layout, holding ``docs``."""
    hour = Path(settings.archive_dir) / "dt=2026-11-24" / "hour=16"
    hour.mkdir(parents=True)
    path = hour / f"p{partition_of(docs[0]['user'], settings.partitions)}-1-0-abcd.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(d) + b"\n" for d in docs)))
    return path


async def test_erasure_removes_features_dlq_entries_and_records_a_tombstone(
    client, redis_client, settings
):
    victim, other = sid(1), sid(2)
    path = _archive(
        settings,
        [
            {"user": victim, "type": "view"},
            {"user": victim, "type": "view"},
            {"user": other, "type": "view"},
        ],
    )
    data.put_shopper(redis_client, victim, recent=["a"], cart={"b": 1}, affinity={"c": 1.0})
    data.put_shopper(redis_client, other, recent=["a"])
    for user in (victim, other, victim):
        redis_client.xadd(data.KEYS.dlq, {"reason": "bad", "raw": b"{}", "user": user})
    redis_client.xadd(data.KEYS.dlq, {"reason": "unreadable", "raw": b"\xff"})
    stream = data.KEYS.stream(partition_of(victim, settings.partitions))
    for i, user in enumerate((victim, other, victim)):  # raw events still in the stream
        ev = Event(event_id=f"e{i}", type="view", user=user, ts=data.NOW_MS, item="a")
        redis_client.xadd(stream, {"e": event.encode(ev)})
    r = await client.delete(f"/v1/admin/shoppers/{victim}", headers=bearer(ADMIN))
    body = r.json()
    assert r.status_code == 200 and body["erased"] is True
    assert body["removed"] == {
        "keys": ["features", "recent", "cart", "affinity"],
        "dlq_entries": 2,
        "stream_entries": 2,
    }
    left = [event.decode(f[b"e"]) for _, f in redis_client.xrange(stream)]
    assert all(isinstance(ev, Event) and ev.user != victim for ev in left)
    assert body["archive"] == {"lines": 2}
    left = [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert [d["user"] for d in left] == [other]
    digest = tombstone_digest(victim)
    assert body["tombstone"] == digest
    assert redis_client.hget(data.KEYS.tombstones, digest) == str(data.NOW_MS).encode()
    assert not any(redis_client.exists(k) for k in data.KEYS.shopper_keys(victim))
    assert redis_client.exists(data.KEYS.shopper(other))
    users = [f.get(b"user") for _, f in redis_client.xrange(data.KEYS.dlq)]
    assert users == [other.encode(), None]
    audit = await client.get(
        "/v1/admin/audit", params={"action": "shopper.erase"}, headers=bearer(ADMIN)
    )
    (entry,) = audit.json()["entries"]
    assert entry["target"] == f"shopper:{digest}" and victim not in audit.text


async def test_erasure_pages_through_a_long_dlq(client, redis_client):
    victim = sid(3)
    p = redis_client.pipeline()
    for i in range(2500):
        p.xadd(data.KEYS.dlq, {"user": victim if i % 1000 == 999 else sid(4), "raw": b"x"})
    p.execute()
    r = await client.delete(f"/v1/admin/shoppers/{victim}", headers=bearer(ADMIN))
    assert r.status_code == 200, r.text
    assert r.json()["removed"]["dlq_entries"] == 2
    assert redis_client.xlen(data.KEYS.dlq) == 2498


async def test_erasure_is_admin_only_and_validates_the_id(client):
    assert (
        await client.delete(f"/v1/admin/shoppers/{sid(1)}", headers=bearer(MERCH))
    ).status_code == 403
    # "short" is a customer id now (the shop's own ids); an e-mail address is no id at all
    r = await client.delete("/v1/admin/shoppers/ann@example.com", headers=bearer(ADMIN))
    assert r.status_code == 400 and r.json()["field"] == "id"
    assert "customer id" in r.json()["detail"]
