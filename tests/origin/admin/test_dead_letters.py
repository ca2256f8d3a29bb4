"""Dropping a dead letter through the admin API: audited, admin only, 404 when gone."""

from __future__ import annotations

import orjson
import pytest

from tests.support.data import ADMIN, KEYS, MERCH, NOW_MS, bearer

pytestmark = pytest.mark.anyio
H = bearer(ADMIN)


def _letter(r, raw: bytes) -> str:
    fields = {"reason": "not JSON", "field": "$", "raw": raw, "source": "collector",
              "user": "u-secret", "received_ms": NOW_MS}  # fmt: skip
    return r.xadd(KEYS.dlq, fields).decode()


async def test_drop_deletes_the_letter_and_audits_why_it_was_dead(client, redis_client):
    entry = _letter(redis_client, b'{"user": "u-secret"')
    r = await client.delete(f"/v1/admin/dlq/{entry}", headers=H)
    assert r.status_code == 200 and r.json() == {"id": entry, "dropped": True}
    assert redis_client.xlen(KEYS.dlq) == 0
    audit = redis_client.xrevrange(KEYS.audit, count=1)[0][1]
    assert audit[b"action"] == b"dlq.drop" and audit[b"target"] == f"dlq:{entry}".encode()
    assert orjson.loads(audit[b"before"])["reason"] == "not JSON"
    assert b"u-secret" not in audit[b"before"]  # never the shopper
    again = await client.delete(f"/v1/admin/dlq/{entry}", headers=H)
    assert again.status_code == 404 and again.json()["field"] == "id"


async def test_only_admins_drop_and_ids_are_checked(client, redis_client):
    entry = _letter(redis_client, b"x")
    assert (await client.delete(f"/v1/admin/dlq/{entry}", headers=bearer(MERCH))).status_code == 403
    assert (await client.delete(f"/v1/admin/dlq/{entry}")).status_code == 401
    assert (await client.delete("/v1/admin/dlq/1-0;x", headers=H)).status_code == 400
    assert redis_client.xlen(KEYS.dlq) == 1
