"""Right to erasure (admin role): ``DELETE /v1/admin/shoppers/{id}``.

Deletes every key of the shopper (``Keys.shopper_keys``), records a tombstone
(``tombstone_digest``: the archive, the DLQ and any replay skip tombstoned shoppers), removes
the shopper's dead letters (entries carry a ``user`` field), and erases the shopper from the
event archive through the segmenter (``segmenter.erasure``). The answer says what was removed;
if the archive erasure is not available in this build it says ``"archive": "pending"``.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import orjson
from redis.asyncio.client import Pipeline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys import is_shopper_id
from origin.admin.base import ADMIN_BUDGET_S, audit, now_ms
from origin.auth import require
from origin.errors import BadRequest
from origin.state import AppState, get_state
from segmenter.schema import tombstone_digest

__all__ = ["erase_archive", "routes"]

DLQ_PAGE = 1000
_KINDS = ("features", "recent", "cart", "bought", "affinity", "exposures")


async def _erase_dlq(state: AppState, sid: str) -> int:
    """XDEL every dead letter whose ``user`` is ``sid``; pages through the stream."""
    client, key = state.store.client, state.keys.dlq
    start, removed, target = "-", 0, sid.encode()
    while True:
        page = await state.store.run(
            "erase_dlq_scan",
            client.xrange(key, start, "+", count=DLQ_PAGE),
            budget_s=ADMIN_BUDGET_S,
        )
        ids = [entry_id for entry_id, fields in page if fields.get(b"user") == target]
        if ids:
            removed += await state.store.run(
                "erase_dlq_del", client.xdel(key, *ids), budget_s=ADMIN_BUDGET_S
            )
        if len(page) < DLQ_PAGE:
            return removed
        start = "(" + page[-1][0].decode()  # exclusive start (Redis 6.2+)


async def erase_archive(state: AppState, sid: str) -> Any:
    """THE call site of the segmenter's archive erasure (integrated by the lead after merge).

    ``segmenter.erasure`` is built on the segmenter's branch; until it is on this branch the
    answer is honestly ``"pending"``: the tombstone is recorded, and archive readers and
    replays honour it, but the archived events are not yet rewritten.
    """
    try:
        erasure = importlib.import_module("segmenter.erasure")
    except ImportError:
        return "pending"
    erase = getattr(erasure, "erase_archive", None)
    if erase is None:
        return "pending: segmenter.erasure has no erase_archive(settings, sid)"
    result = erase(state.settings, sid)
    return await result if inspect.isawaitable(result) else result


async def erase(request: Request) -> Response:
    """Erase one shopper and say what was removed."""
    state = get_state(request)
    caller = require(request, state.settings, ())
    sid = str(request.path_params["id"])
    if not is_shopper_id(sid):
        raise BadRequest("shopper id must be a 22-character anonymous shopper id", field="id")
    digest = tombstone_digest(sid)
    keys = state.keys.shopper_keys(sid)

    def delete(p: Pipeline) -> None:
        for k in keys:
            p.delete(k)

    deleted = await state.store.pipeline(
        "erase_keys", delete, transaction=True, budget_s=ADMIN_BUDGET_S
    )
    removed = [kind for kind, n in zip(_KINDS, deleted, strict=True) if n]
    dlq = await _erase_dlq(state, sid)
    archive = await erase_archive(state, sid)
    after = {"tombstone": digest, "keys": removed, "dlq_entries": dlq, "archive": archive}

    def record(p: Pipeline) -> None:
        p.hset(state.keys.tombstones, digest, now_ms(state))
        audit(p, state, caller, "shopper.erase", f"shopper:{digest}", before=None, after=after)

    await state.store.pipeline("erase_tombstone", record, transaction=True, budget_s=ADMIN_BUDGET_S)
    doc = {"erased": True, "tombstone": digest, "removed": {"keys": removed, "dlq_entries": dlq}}
    doc["archive"] = archive
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def routes() -> list[BaseRoute]:
    """Privacy routes."""
    return [Route("/v1/admin/shoppers/{id}", erase, methods=["DELETE"])]
