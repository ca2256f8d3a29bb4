"""``p13n backup`` / ``p13n restore``: round trip, validation first, all or nothing, through
the admin API (the document's own validation is tested in tests/origin/admin/test_backup.py)."""

from __future__ import annotations

import json

import redis

from ops.backup import BACKUP_KIND
from ops.cli import main
from ops.stack import StackInfo
from segmenter.schema import Keys
from tests.support.ops import api

KEYS = Keys()
EXP = {
    "key": "bk-algo",
    "name": "Backup",
    "variations": [{"name": "control"}, {"name": "boost"}],
    "weights": [0.5, 0.5],
}


def test_backup_then_restore_brings_the_admin_state_back(capsys, stack: StackInfo, tmp_path):
    r = redis.Redis.from_url(stack.redis_url)
    try:
        item = {"category": "dairy", "price": 2.5, "stock": 3}
        assert api(stack, "PUT", "/v1/admin/catalog/BK-1", json=item).status_code == 200
        assert api(stack, "POST", "/v1/admin/experiments", json=EXP).status_code == 201
        assert api(stack, "PATCH", "/v1/admin/experiments/bk-algo",
                   json={"coverage": 0.5}).status_code == 200  # fmt: skip
        path = tmp_path / "admin.json"
        assert main(["backup", str(path), "--stack", stack.directory]) == 0
        doc = json.loads(path.read_text())
        assert doc["kind"] == BACKUP_KIND and doc["version"] == 1
        assert doc["catalog"]["BK-1"]["stock"] == 3 and len(doc["history"]["bk-algo"]) == 1
        roles = {t["role"] for t in doc["token_roles"]}
        assert roles == {"admin", "merchandiser", "experimenter", "service"}
        assert all(tok not in path.read_text() for tok in stack.tokens.values())
        gens_before = dict(r.hgetall(KEYS.generations))

        api(stack, "PUT", "/v1/admin/catalog/BK-1",
            json={"category": "dairy", "price": 9.0, "stock": 1})  # fmt: skip
        api(stack, "PUT", "/v1/admin/catalog/BK-2",
            json={"category": "dairy", "price": 1.0, "stock": 1})  # fmt: skip
        r.hdel(KEYS.experiments, "bk-algo")
        capsys.readouterr()
        assert main(["restore", str(path), "--stack", stack.directory]) == 0
        assert "restored" in capsys.readouterr().out

        got = api(stack, "GET", "/v1/admin/catalog/BK-1").json()
        assert got["price"] == 2.5
        assert api(stack, "GET", "/v1/admin/catalog/BK-2").status_code == 404
        assert api(stack, "GET", "/v1/admin/experiments/bk-algo").json()["coverage"] == 0.5
        assert r.llen(KEYS.experiment_history("bk-algo")) == 1
        soft_all = r.hget(KEYS.generations, "*").decode().split(",")
        before_all = gens_before.get(b"*", b"0,0").decode().split(",")
        assert int(soft_all[0]) == int(before_all[0]) + 1
    finally:
        r.hdel(KEYS.experiments, "bk-algo")
        r.delete(KEYS.experiment_history("bk-algo"))
        r.close()


def test_an_invalid_backup_changes_nothing(capsys, stack: StackInfo, tmp_path) -> None:
    r = redis.Redis.from_url(stack.redis_url)
    try:
        r.hset(KEYS.catalog, "KEEP-1", json.dumps({"category": "x", "price": 1, "stock": 1}))
        bad = {"kind": BACKUP_KIND, "version": 1, "experiments": {}, "history": {},
               "catalog": {"NEW-1": {"category": "x", "price": 1, "stock": 1}},
               "generations": {"*": [1, 0]}, "item_mask": {"NEW-1": "yesterday"}}  # fmt: skip
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        capsys.readouterr()
        assert main(["restore", str(path), "--stack", stack.directory]) == 1
        assert "item_mask.NEW-1" in capsys.readouterr().err
        assert r.hexists(KEYS.catalog, "KEEP-1") and not r.hexists(KEYS.catalog, "NEW-1")
    finally:
        r.hdel(KEYS.catalog, "KEEP-1")
        r.close()


def test_restore_goes_through_the_admin_api_role_checked_and_audited(
    capsys, stack: StackInfo, tmp_path
) -> None:
    path = tmp_path / "admin.json"
    assert main(["backup", str(path), "--stack", stack.directory]) == 0
    capsys.readouterr()
    experimenter = stack.tokens["experimenter"]
    argv = ["restore", str(path), "--stack", stack.directory, "--token", experimenter]
    assert main(argv) == 1
    assert "403" in capsys.readouterr().err  # the API's roles, not the CLI's Redis access
    assert main(["restore", str(path), "--stack", stack.directory]) == 0
    entry = api(stack, "GET", "/v1/admin/audit", params={"action": "backup.restore"}).json()
    assert entry["entries"][0]["who"] != "ops:restore"  # the token's caller, as the API audits
