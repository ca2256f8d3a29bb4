"""Backup and restore API: the document, validation before any write, audit, roles."""

from __future__ import annotations

import orjson
import pytest

from origin.admin.backup import BACKUP_KIND, merged_generations, validate
from origin.errors import BadRequest
from tests.support.data import ADMIN, EXPER, KEYS, MERCH, bearer

pytestmark = pytest.mark.anyio
H = bearer(ADMIN)
EXP = {
    "key": "bk-algo",
    "name": "Backup",
    "variations": [{"name": "control"}, {"name": "boost"}],
    "weights": [0.5, 0.5],
}


def _doc(**over):
    return {"kind": BACKUP_KIND, "version": 1, "experiments": {}, "history": {},
            "catalog": {}, "generations": {}, "item_mask": {}, **over}  # fmt: skip


async def test_backup_then_restore_brings_the_state_back_audited(client, redis_client):
    item = {"category": "dairy", "price": 2.5, "stock": 3}
    assert (await client.put("/v1/admin/catalog/BK-1", json=item, headers=H)).status_code == 200
    assert (await client.post("/v1/admin/experiments", json=EXP, headers=H)).status_code == 201
    patch = await client.patch("/v1/admin/experiments/bk-algo", json={"coverage": 0.5}, headers=H)
    assert patch.status_code == 200
    doc = (await client.get("/v1/admin/backup", headers=H)).json()
    assert doc["kind"] == BACKUP_KIND and doc["catalog"]["BK-1"]["stock"] == 3
    assert len(doc["history"]["bk-algo"]) == 1
    assert {t["role"] for t in doc["token_roles"]} >= {"admin", "merchandiser"}
    assert ADMIN not in orjson.dumps(doc).decode()
    soft_before = int((redis_client.hget(KEYS.generations, "*") or b"0,0").split(b",")[0])

    await client.put("/v1/admin/catalog/BK-2", json=item, headers=H)
    redis_client.hdel(KEYS.experiments, "bk-algo")
    r = await client.post("/v1/admin/restore", json=doc, headers=H)
    assert r.status_code == 200, r.text
    assert r.json()["restored"]["catalog"] == 1 and r.json()["token_roles"]["admin"] == 1
    assert not redis_client.hexists(KEYS.catalog, "BK-2")
    assert orjson.loads(redis_client.hget(KEYS.experiments, "bk-algo"))["coverage"] == 0.5
    assert redis_client.llen(KEYS.experiment_history("bk-algo")) == 1
    soft_after = int(redis_client.hget(KEYS.generations, "*").split(b",")[0])
    assert soft_after == soft_before + 1  # everything soft-purged once
    audit = redis_client.xrevrange(KEYS.audit, count=1)[0][1]
    assert audit[b"action"] == b"backup.restore" and audit[b"who"] != b"ops:restore"


async def test_an_invalid_backup_is_a_400_naming_the_field_and_writes_nothing(client, redis_client):
    redis_client.hset(KEYS.catalog, "KEEP-1", orjson.dumps({"category": "x", "price": 1}))
    bad = _doc(catalog={"NEW-1": {"category": "x", "price": 1}}, item_mask={"NEW-1": "x"})
    r = await client.post("/v1/admin/restore", json=bad, headers=H)
    assert r.status_code == 400 and r.json()["field"] == "item_mask.NEW-1"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert redis_client.hexists(KEYS.catalog, "KEEP-1")
    assert not redis_client.hexists(KEYS.catalog, "NEW-1")
    assert redis_client.xlen(KEYS.audit) == 0


@pytest.mark.parametrize("token", [MERCH, EXPER])
async def test_only_admins_back_up_and_restore(client, token):
    assert (await client.get("/v1/admin/backup", headers=bearer(token))).status_code == 403
    r = await client.post("/v1/admin/restore", json=_doc(), headers=bearer(token))
    assert r.status_code == 403
    assert (await client.post("/v1/admin/restore", json=_doc())).status_code == 401


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"kind": "other"}, "kind"),
        ({"kind": BACKUP_KIND, "version": 2}, "version"),
        (_doc(experiments=[]), "experiments"),
        (_doc(experiments={"x": {**EXP, "key": "x", "weights": [1.0]}}), "experiments.x"),
        (_doc(history={"x": {}}), "history.x"),
        (_doc(catalog={"A-1": {"price": 1}}), "catalog.A-1"),
        (_doc(generations={"*": [1]}), "generations.*"),
    ],
)
def test_validate_names_the_first_problem(doc, field) -> None:
    with pytest.raises(BadRequest) as caught:
        validate(doc)
    assert caught.value.extensions["field"] == field


def test_generations_never_go_back_and_everything_is_soft_purged_once() -> None:
    merged = merged_generations({b"*": b"4,1", b"sku:a": b"2,2"}, {"*": [2, 2], "cat:x": [1, 0]})
    assert merged == {"*": "5,2", "sku:a": "2,2", "cat:x": "1,0"}
