"""Right to erasure (admin role): ``DELETE /v1/admin/shoppers/{id}``.

Deletes every key of the shopper (``Keys.shopper_keys``), records a tombstone
(``tombstone_digest``: the archive, the DLQ and any replay skip tombstoned shoppers), and
erases the shopper from the event archive, the dead letters, the partition stream (raw
events not yet trimmed) and the partition state through the segmenter
(``segmenter.erasure``). The answer says what was removed.
"""

from __future__ import annotations

import orjson
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cache_keys import is_shopper_id
from origin.admin.base import ADMIN_BUDGET_S, audit, now_ms
from origin.auth import require
from origin.errors import BadRequest, Unavailable
from origin.state import AppState, get_state
from segmenter.erasure import erase_from_dlq_and_archive
from segmenter.schema import tombstone_digest

__all__ = ["erase_archive", "routes"]

_KINDS = ("features", "recent", "cart", "bought", "affinity", "exposures")


async def erase_archive(state: AppState, sid: str) -> dict[str, int]:
    """The segmenter's erasure of the archive, the dead letters and partition state."""
    try:
        report = await erase_from_dlq_and_archive(
            state.store.client,
            state.keys,
            sid,
            state.settings.archive_dir,
            partitions=state.settings.partitions,
        )
    except (RedisError, OSError) as exc:
        raise Unavailable(
            f"erasure could not finish ({type(exc).__name__}); the tombstone "
            "is recorded, retry the DELETE to complete it"
        ) from exc
    return {
        "archive_lines": report.archive_lines,
        "dlq_entries": report.dead_letters,
        "partition_fields": report.partition_fields,
        "stream_entries": report.stream_entries,
    }


async def erase(request: Request) -> Response:
    """Erase one shopper and say what was removed."""
    state = get_state(request)
    caller = require(request, state.settings, ())
    sid = str(request.path_params["id"])
    if not is_shopper_id(sid):
        raise BadRequest("shopper id must be a 22-character anonymous shopper id", field="id")
    digest = tombstone_digest(sid)
    keys = state.keys.shopper_keys(sid)

    def tombstone(p: Pipeline) -> None:
        # First, so the processor drops the shopper's events from now on, and archive
        # readers and replays skip them even if what follows is interrupted.
        p.hset(state.keys.tombstones, digest, now_ms(state))

    await state.store.pipeline("erase_tombstone", tombstone, budget_s=ADMIN_BUDGET_S)

    def delete(p: Pipeline) -> None:
        for k in keys:
            p.delete(k)

    deleted = await state.store.pipeline(
        "erase_keys", delete, transaction=True, budget_s=ADMIN_BUDGET_S
    )
    removed = [kind for kind, n in zip(_KINDS, deleted, strict=True) if n]
    elsewhere = await erase_archive(state, sid)
    after = {"tombstone": digest, "keys": removed, **elsewhere}

    def record(p: Pipeline) -> None:
        audit(p, state, caller, "shopper.erase", f"shopper:{digest}", before=None, after=after)

    await state.store.pipeline("erase_audit", record, transaction=True, budget_s=ADMIN_BUDGET_S)
    doc = {
        "erased": True,
        "tombstone": digest,
        "removed": {
            "keys": removed,
            "dlq_entries": elsewhere["dlq_entries"],
            "stream_entries": elsewhere["stream_entries"],
        },
        "archive": {"lines": elsewhere["archive_lines"]},
        "partition_fields": elsewhere["partition_fields"],
    }
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def routes() -> list[BaseRoute]:
    """Privacy routes."""
    return [Route("/v1/admin/shoppers/{id}", erase, methods=["DELETE"])]
