"""Right to erasure (admin role): ``DELETE /v1/admin/shoppers/{id}``.

Deletes every key of the shopper (``Keys.shopper_keys``), records a tombstone
(``tombstone_digest``: the archive, the DLQ and any replay skip tombstoned shoppers), and
erases the shopper from the event archive, the dead letters, the partition stream (raw
events not yet trimmed) and the partition state through the segmenter
(``segmenter.erasure``). The answer says what was removed.

The id is either kind (``segmenter.shoppers``). Erasing a customer erases every anonymous id
that signed in as it (``Keys.anons``, written by identify events) the same way, tombstones
first; erasing an anonymous id also removes its sign-in link. ``linked_anonymous_ids`` in the
answer counts the anonymous ids erased with the customer.
"""

from __future__ import annotations

import orjson
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

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


async def _linked(state: AppState, sid: str) -> list[str]:
    """The anonymous ids that signed in as ``sid`` (none for an anonymous id)."""
    raw = await state.store.run(
        "erase_linked", state.store.client.smembers(state.keys.anons(sid)), budget_s=ADMIN_BUDGET_S
    )
    return sorted(x.decode() if isinstance(x, bytes) else str(x) for x in raw or ())


async def erase(request: Request) -> Response:
    """Erase one shopper and say what was removed."""
    state = get_state(request)
    caller = require(request, state.settings, ())
    sid = str(request.path_params["id"])
    problem = state.settings.shopper_ids.problem(sid)
    if problem is not None:
        raise BadRequest(f"shopper id {problem}", field="id")
    digest = tombstone_digest(sid)
    k = state.keys
    anons = await _linked(state, sid)

    def tombstone(p: Pipeline) -> None:
        # First, so the processor drops the shopper's events from now on, and archive
        # readers and replays skip them even if what follows is interrupted.
        p.hset(k.tombstones, mapping={tombstone_digest(x): now_ms(state) for x in [sid, *anons]})

    await state.store.pipeline("erase_tombstone", tombstone, budget_s=ADMIN_BUDGET_S)

    deleted: list[int] = []
    for x in [sid, *anons]:  # one shopper (one hash slot) per transaction

        def delete(p: Pipeline, x: str = x) -> None:
            for key in (*k.shopper_keys(x), k.link(x), k.anons(x)):
                p.delete(key)

        done = await state.store.pipeline(
            "erase_keys", delete, transaction=True, budget_s=ADMIN_BUDGET_S
        )
        deleted = deleted or done
    removed = [kind for kind, n in zip(_KINDS, deleted, strict=False) if n]
    elsewhere = await erase_archive(state, sid)
    for anon in anons:
        for name, n in (await erase_archive(state, anon)).items():
            elsewhere[name] += n
    after = {"tombstone": digest, "keys": removed, "linked": len(anons), **elsewhere}

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
        "linked_anonymous_ids": len(anons),
    }
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def routes() -> list[BaseRoute]:
    """Privacy routes."""
    return [Route("/v1/admin/shoppers/{id}", erase, methods=["DELETE"])]
