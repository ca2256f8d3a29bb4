"""What schemathesis found against a real origin (issue 16, item 7), one regression each:
server errors on hostile input, and integers written as 2.0 that the published schema
allows but the validators refused. Every answer is a 2xx or a problem+json naming the field.
"""

from __future__ import annotations

import orjson
import pytest

from cache_keys.wire._check import whole_number
from origin.admin.backup import BACKUP_KIND, GEN_MAX
from origin.app import create_app
from origin.openapi import document
from tests.support.asgi import app_client
from tests.support.data import ADMIN, EXPER, KEYS, MERCH, NOW_MS, SERVICE, bearer

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"


def _problem(r, status: int, field: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM and r.json()["field"] == field, r.text


# -- server errors --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/admin/audit", "/v1/admin/dlq"])
@pytest.mark.parametrize("cursor", ["0-0", "000-00"])
async def test_a_page_before_the_first_stream_id_is_empty_not_a_500(
    client, redis_client, path, cursor
):
    # Was 500 ("Redis refused a command"): XREVRANGE refuses "(0-0" as an interval end.
    redis_client.xadd(KEYS.dlq, {"reason": "x", "field": "$", "raw": b"x", "source": "collector"})
    r = await client.get(f"{path}?before={cursor}", headers=bearer(ADMIN))
    assert r.status_code == 200, r.text
    assert r.json()["entries"] == [] and r.json()["next"] is None
    if path.endswith("dlq"):
        assert r.json()["depth"] == 1  # the cursor empties the page, not the count


async def test_an_invalidation_mode_that_is_not_a_string_is_a_400(client):
    # Was 500: {} is unhashable, and `mode not in PURGE_MODES` raised TypeError.
    for mode in ({}, [], 1, None):
        r = await client.post(
            "/v1/admin/invalidations", json={"tags": ["all"], "mode": mode}, headers=bearer(MERCH)
        )
        _problem(r, 400, "mode")


def _backup(**over):
    return {"kind": BACKUP_KIND, "version": 1, "experiments": {}, "history": {},
            "catalog": {}, "generations": {}, "item_mask": {}, **over}  # fmt: skip


@pytest.mark.parametrize(
    ("over", "field"),
    [
        # Was 503 (redis-py's DataError on a bool score, reported as the store unavailable).
        ({"item_mask": {"SKU-1": False}}, "item_mask.SKU-1"),
        ({"item_mask": {"SKU-1": 1.5}}, "item_mask.SKU-1"),
        # Were stored as "True,0" and a counter past what edges read (64-bit).
        ({"generations": {"*": [True, 0]}}, "generations.*"),
        ({"generations": {"*": [GEN_MAX + 1, 0]}}, "generations.*"),
        ({"generations": {"*": [-1, 0]}}, "generations.*"),
        # Was accepted: a boolean where the backup holds a number.
        ({"catalog": {"SKU-1": {"category": "x", "updated_ms": False}}}, "catalog.SKU-1"),
    ],
)
async def test_a_restore_with_booleans_for_numbers_is_a_400_writing_nothing(
    client, redis_client, over, field
):
    r = await client.post("/v1/admin/restore", json=_backup(**over), headers=bearer(ADMIN))
    _problem(r, 400, field)
    assert not redis_client.exists(KEYS.item_mask) and not redis_client.exists(KEYS.catalog)


async def test_a_restore_takes_whole_floats_as_integers(client, redis_client):
    doc = _backup(generations={"cat:x": [3.0, 1.0]}, item_mask={"SKU-1": float(NOW_MS)})
    r = await client.post("/v1/admin/restore", json=doc, headers=bearer(ADMIN))
    assert r.status_code == 200, r.text
    assert redis_client.zscore(KEYS.item_mask, "SKU-1") == NOW_MS
    assert redis_client.hget(KEYS.generations, "cat:x") == b"3,1"


# -- integers written as 2.0 (JSON Schema's "integer" counts them) ---------------------------


async def test_whole_floats_are_integers_across_the_api(client):
    item = {"category": "dairy", "price": 2.5, "stock": 294.0}
    r = await client.put("/v1/admin/catalog/MILK-1", json=item, headers=bearer(MERCH))
    assert r.status_code == 200 and r.json()["after"]["stock"] == 294, r.text
    assert (await client.put("/v1/admin/catalog/MILK-1", json={**item, "stock": 2.5},
                             headers=bearer(MERCH))).status_code == 400  # fmt: skip

    exp = {"key": "rail-algo", "variations": [{"name": "a"}, {"name": "b"}],
           "start_ms": float(NOW_MS), "stop_ms": NOW_MS + 1e6}  # fmt: skip
    r = await client.post("/v1/admin/experiments", json=exp, headers=bearer(EXPER))
    assert r.status_code == 201, r.text
    got = (await client.get("/v1/admin/experiments/rail-algo", headers=bearer(EXPER))).json()
    assert got["start_ms"] == NOW_MS and type(got["start_ms"]) is int
    r = await client.post(
        "/v1/admin/experiments/rail-algo/rollback", json={"version": 1.0}, headers=bearer(EXPER)
    )
    assert r.status_code != 400, r.text

    beat = {"edge_id": "edge-1", "config_revision": 3.0, "counts": {"hit": 5.0},
            "generations": {"cat:x": [1.0, 0]}}  # fmt: skip
    r = await client.post("/v1/edge/heartbeat", json=beat, headers=bearer(SERVICE))
    assert r.status_code == 204, r.text


async def test_an_event_time_written_as_a_float_is_accepted(settings):
    ev = {"v": 1, "event_id": "e1", "type": "view", "user": "u1", "item": "a",
          "ts": float(NOW_MS)}  # fmt: skip
    async with app_client(create_app(settings)) as http:
        r = await http.post("/v1/events", json=ev)
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text


async def test_an_event_from_beyond_the_clock_skew_is_422_and_the_schema_says_so(settings):
    # Valid by Event v1's schema (ts <= 2100), later than the collector's clock allows: the
    # document cannot state a bound that moves with the clock, so it describes it (422).
    ev = {"v": 1, "event_id": "e1", "type": "view", "user": "u1", "item": "a",
          "ts": 4_000_000_000_000}  # fmt: skip
    async with app_client(create_app(settings)) as http:
        r = await http.post("/v1/events", json=ev)
        batch = await http.post("/v1/events", json={"events": [ev]})
    _problem(r, 422, "ts")
    assert batch.status_code == 202 and batch.json()["results"][0]["field"] == "ts"
    doc = document(create_app(settings).routes, max_skew_ms=settings.max_clock_skew_ms)
    assert "422" in doc["paths"]["/v1/events"]["post"]["responses"]
    assert "422" in orjson.dumps(doc["components"]["schemas"]["events"]).decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # Was 500 (csv.Error "new-line character seen in unquoted field"): a lone CR.
        ("sku,stock,price,category\nA-1,1,2.5,dairy\r*", "line 3"),
        # Was 500 (csv.Error "field larger than field limit").
        ("sku,stock,price,category\n" + '"' + "x" * 140_000 + '",1,2,dairy\n', "line 2"),
    ],
)
async def test_a_csv_import_the_csv_module_cannot_read_is_a_400_naming_the_line(
    client, redis_client, body, field
):
    r = await client.post(
        "/v1/admin/catalog", content=body, headers={**bearer(MERCH), "Content-Type": "text/csv"}
    )
    _problem(r, 400, field)
    assert not redis_client.exists(KEYS.catalog)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(294.0, 294), (7, 7), (1 - 2**63, 1 - 2**63), (2**63 - 1, 2**63 - 1), (1.5, None),
     (True, None), (float(2**63), None), (-float(2**63), None), (1e36, None),
     (float("inf"), None), ("1", None)],
)  # fmt: skip
def test_whole_number_is_a_json_integer_within_64_bits(value, expected):
    assert whole_number(value) == expected


@pytest.mark.parametrize(
    ("member", "field"),
    [
        # orjson reads an integer literal past 64 bits as a float (1e36); taken as an
        # integer, it could not be written back to Redis as JSON (a 500).
        (b'"counts": {"hit": 1014531043985698453024989208951914496}', "counts"),
        (b'"counts": {"hit": 9007199254740993}', "counts"),  # over MAX_COUNT (2**53)
        (b'"config_revision": 1014531043985698453024989208951914496', "config_revision"),
        (b'"generations": {"cat:x": [1014531043985698453024989208951914496, 0]}',
         "generations.cat:x"),
    ],
)  # fmt: skip
async def test_a_heartbeat_with_an_integer_past_its_bound_is_a_400(client, member, field):
    body = b'{"edge_id": "edge-1", ' + member + b"}"
    r = await client.post(
        "/v1/edge/heartbeat",
        content=body,
        headers={**bearer(SERVICE), "Content-Type": "application/json"},
    )
    _problem(r, 400, field)


async def test_an_integer_literal_below_64_bits_is_refused_not_rounded_in(client):
    # -2**63 - 1 is read by orjson as the float -2**63: it was taken as -2**63, in range.
    body = b'{"edge_id": "edge-1", "generations": {"cat:x": [-9223372036854775809, 0]}}'
    r = await client.post(
        "/v1/edge/heartbeat",
        content=body,
        headers={**bearer(SERVICE), "Content-Type": "application/json"},
    )
    _problem(r, 400, "generations.cat:x")


async def test_a_csv_row_with_more_fields_than_the_header_is_a_400(client, redis_client):
    # Was imported (200), the extra field dropped: DictReader files it under the key None.
    body = "sku,stock,price,category\r\nE-1,5,2.50,dairy,true\r\n"
    r = await client.post(
        "/v1/admin/catalog", content=body, headers={**bearer(MERCH), "Content-Type": "text/csv"}
    )
    _problem(r, 400, "line 2")
    assert not redis_client.exists(KEYS.catalog)
    fine = body.replace("category", "category,durable")
    r = await client.post(
        "/v1/admin/catalog", content=fine, headers={**bearer(MERCH), "Content-Type": "text/csv"}
    )
    assert r.status_code == 200 and r.json()["imported"] == 1, r.text
