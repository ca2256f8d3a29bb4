"""Invalidations: generations, the item mask, pub/sub pushes, status by edge heartbeats."""

from __future__ import annotations

import pytest

from cache_keys.wire import decode_purge, parse_edge_config
from origin.admin.invalidations import _nocase_pattern
from segmenter.connection import connect
from tests.support import data
from tests.support.data import MERCH, SERVICE, bearer

pytestmark = pytest.mark.anyio
H = bearer(MERCH)


async def post(client, tags, mode="soft"):
    return await client.post(
        "/v1/admin/invalidations", json={"tags": tags, "mode": mode}, headers=H
    )


async def test_soft_and_hard_bump_generations_and_hard_sku_masks(client, redis_client):
    r = await post(client, ["cat:Dairy", "sku:AB-1"], "soft")
    assert r.status_code == 202 and r.headers["location"].endswith(r.json()["id"])
    assert r.json()["generations"] == {"cat:dairy": [1, 0], "sku:ab-1": [1, 0]}
    assert r.json()["mask_add"] == [] and r.json()["cloudflare"]["status"] == "skipped"
    r = await post(client, ["sku:AB-1", "all"], "hard")
    assert r.json()["generations"] == {"sku:ab-1": [2, 1], "*": [1, 1]}
    assert r.json()["mask_add"] == ["AB-1"]
    cfg = parse_edge_config((await client.get("/v1/edge/config")).json())
    assert cfg.item_mask == frozenset({"AB-1"})
    assert cfg.generations == {"cat:dairy": (1, 0), "sku:ab-1": (2, 1), "*": (1, 1)}


async def test_hard_purge_removes_the_item_from_recommendations_at_once(client, redis_client):
    data.put_popular(redis_client, data.items(("AB-1", 9, "x"), ("CD-2", 8, "y")))
    await client.app.state.p13n.snapshot.refresh()
    first = await client.get("/v1/recommendations")
    assert [i["item"] for i in first.json()["items"]] == ["AB-1", "CD-2"]
    await post(client, ["sku:AB-1"], "hard")
    after = await client.get("/v1/recommendations")
    assert [i["item"] for i in after.json()["items"]] == ["CD-2"]


async def test_purge_is_pushed_to_self_hosted_edges(client, redis_url):
    sub = connect(redis_url)
    await sub.ping()  # a cluster client learns the slot map on its first command
    pubsub = sub.pubsub()
    await pubsub.subscribe(data.KEYS.purge_channel)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    r = await post(client, ["sku:AB-1"], "hard")
    assert r.json()["pushed_to_subscribers"] == 1
    msg = None
    for _ in range(50):
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if msg:
            break
    assert msg is not None
    purge = decode_purge(msg["data"])
    assert purge.id == r.json()["id"] and purge.mode == "hard"
    assert purge.tags == ("sku:ab-1",) and purge.generations == {"sku:ab-1": (1, 1)}
    assert purge.mask_add == ("AB-1",)
    await pubsub.aclose()
    await sub.aclose()


async def test_status_reports_applied_by_n_of_m_live_edges(client, clock):
    inv = (await post(client, ["cat:dairy"], "hard")).json()

    async def beat(edge, gens):
        body = {"edge_id": edge, "config_etag": "e", "generations": gens, "counts": {}}
        assert (
            await client.post("/v1/edge/heartbeat", json=body, headers=bearer(SERVICE))
        ).status_code == 204

    await beat("old-edge", {})
    clock.advance(120)  # old-edge is no longer live
    await beat("edge-a", {"cat:dairy": [1, 1]})
    await beat("edge-b", {"cat:dairy": [1, 0]})
    s = (await client.get(f"/v1/admin/invalidations/{inv['id']}", headers=H)).json()
    assert s["edges"] == {"live": 2, "applied": 1, "pending": ["edge-b"]}
    assert s["state"] == "propagating"
    await beat("edge-b", {"cat:dairy": [2, 1]})
    s = (await client.get(f"/v1/admin/invalidations/{inv['id']}", headers=H)).json()
    assert s["edges"]["applied"] == 2 and s["state"] == "applied"
    missing = await client.get("/v1/admin/invalidations/inv-nope", headers=H)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tags": []}, "tags"),
        ({"tags": ["colour:red"]}, "tags[0]"),
        ({"tags": ["sku"]}, "tags[0]"),
        ({"tags": ["seg:not-an-hseg"]}, "tags[0]"),
        ({"tags": ["cat:dairy"], "mode": "medium"}, "mode"),
        ({"tags": ["cat:dairy"], "reason": 7}, "reason"),
        ({"mode": "soft"}, "tags"),
    ],
)
async def test_bad_invalidations_are_400_naming_the_field(client, body, field):
    r = await client.post("/v1/admin/invalidations", json=body, headers=H)
    assert r.status_code == 400 and r.json()["field"] == field


async def test_invalidation_is_audited_and_counted(client):
    inv = (await post(client, ["route:home"], "soft")).json()
    audit = await client.get(
        "/v1/admin/audit", params={"action": "invalidation.create"}, headers=bearer(data.ADMIN)
    )
    (entry,) = audit.json()["entries"]
    assert entry["after"]["id"] == inv["id"] and entry["before"] is None
    metrics = (await client.get("/metrics")).text
    assert 'p13n_origin_invalidations_total{mode="soft"} 1.0' in metrics


MILK = {"stock": 5, "price": 1.0, "category": "dairy"}


async def test_hard_purge_by_the_cache_tag_masks_the_catalogs_mixed_case_ids(client, redis_client):
    for sku in ("SKU-9", "Sku-9", "SKU-90", "sku-x"):
        assert (await client.put(f"/v1/admin/catalog/{sku}", json=MILK, headers=H)).is_success
    data.put_popular(redis_client, data.items(("SKU-9", 9, "x"), ("CD-2", 8, "y")))
    await client.app.state.p13n.snapshot.refresh()
    r = await post(client, ["sku:sku-9"], "hard")  # the tag as Cache-Tag shows it
    assert r.json()["tags"] == ["sku:sku-9"]
    assert r.json()["mask_add"] == ["sku-9", "SKU-9", "Sku-9"]
    cfg = parse_edge_config((await client.get("/v1/edge/config")).json())
    assert {"SKU-9", "Sku-9"} <= cfg.item_mask and "SKU-90" not in cfg.item_mask
    after = await client.get("/v1/recommendations")
    assert [i["item"] for i in after.json()["items"]] == ["CD-2"]
    exact = await post(client, ["sku:sku-x"], "hard")  # held exactly: stands for itself
    assert exact.json()["mask_add"] == ["sku-x"]


def test_nocase_pattern_escapes_glob_specials():
    assert _nocase_pattern("Ab-1") == "[aA][bB]-1"
    assert _nocase_pattern("a*?[]") == "[aA]\\*\\?\\[\\]"


async def test_the_purge_log_pages_newest_first_with_per_edge_progress(client, clock):
    ids = []
    for i in range(5):
        ids.append((await post(client, [f"cat:c{i}"], "hard" if i % 2 else "soft")).json()["id"])
        clock.advance(1)
    first = (await client.get("/v1/admin/invalidations", params={"limit": "2"}, headers=H)).json()
    assert [r["id"] for r in first["invalidations"]] == ids[::-1][:2]
    assert first["total"] == 5 and first["next_offset"] == 2
    rest = await client.get("/v1/admin/invalidations", params={"limit": "3", "offset": "2"},
                            headers=H)  # fmt: skip
    assert [r["id"] for r in rest.json()["invalidations"]] == ids[::-1][2:]
    assert rest.json()["next_offset"] is None
    top = first["invalidations"][0]
    assert (top["who"].split(":")[0], top["mode"], top["tags"]) == (
        "merchandiser",
        "soft",
        ["cat:c4"],
    )
    assert top["state"] == "no-live-edges" and top["time_to_apply_ms"] is None

    async def beat(edge, revision):
        body = {"edge_id": edge, "config_etag": "e", "config_revision": revision, "counts": {}}
        r = await client.post("/v1/edge/heartbeat", json=body, headers=bearer(SERVICE))
        assert r.status_code == 204

    clock.advance(2)
    await beat("edge-a", top["revision"])
    await beat("edge-b", 0)
    page = (await client.get("/v1/admin/invalidations", params={"limit": "1"}, headers=H)).json()
    rec = page["invalidations"][0]
    assert rec["state"] == "propagating" and rec["edges"]["pending"] == ["edge-b"]
    assert [(e["edge_id"], e["applied"]) for e in rec["per_edge"]] == [
        ("edge-a", True),
        ("edge-b", False),
    ]
    clock.advance(3)
    await beat("edge-b", top["revision"])
    rec = (await client.get(f"/v1/admin/invalidations/{top['id']}", headers=H)).json()
    assert rec["state"] == "applied"
    assert rec["time_to_apply_ms"] == 6_000  # created at +4 s, edge-b seen applied at +10 s


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "x"}, {"offset": "-1"}, {"page": "2"}]
)
async def test_the_purge_log_refuses_bad_paging(client, params):
    r = await client.get("/v1/admin/invalidations", params=params, headers=H)
    assert r.status_code == 400
