"""Right to erasure (admin role): ``DELETE /v1/admin/shoppers/{id}``.

Deletes every key of the shopper (``Keys.shopper_keys``), records a tombstone
(``tombstone_digest``: the archive, the DLQ and any replay skip tombstoned shoppers), and
erases the shopper from the event archive, the dead letters, the partition stream (raw
events not yet trimmed) and the partition state through the segmenter
(``segmenter.erasure``). The answer says what was removed.

The id is either kind (``segmenter.shoppers``). Erasing a customer erases every anonymous id
that signed in as it (``Keys.anons``, written by identify events) the same way, tombstones
first. Erasing only an anonymous id also removes it from the records of every customer it
signed in as (``Keys.signins``, and the link while it lasts): their ``anons`` sets, their
A/B unit (``ab``, which then falls back to the customer id) and the identify events in
their partitions' streams and archive; the customers' own history stays.
``linked_anonymous_ids`` in the answer counts the anonymous ids erased with the customer.
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
from segmenter.stitching import parse_link

__all__ = ["erase_archive", "routes"]

_KINDS = ("features", "recent", "cart", "bought", "affinity", "exposures")


async def erase_archive(
    state: AppState, sid: str, signed_in_as: list[str] | None = None
) -> dict[str, int]:
    """The segmenter's erasure of the archive, the dead letters and partition state."""
    try:
        report = await erase_from_dlq_and_archive(
            state.store.client,
            state.keys,
            sid,
            state.settings.archive_dir,
            partitions=state.settings.partitions,
            signed_in_as=signed_in_as or (),
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


async def _signed_in_as(state: AppState, sid: str) -> list[str]:
    """The customers an anonymous ``sid`` signed in as (none for a customer id)."""
    k = state.keys

    def read(p: Pipeline) -> None:
        p.smembers(k.signins(sid))
        p.get(k.link(sid))

    members, link = await state.store.pipeline("erase_signins", read, budget_s=ADMIN_BUDGET_S)
    found = {x.decode() if isinstance(x, bytes) else str(x) for x in members or ()}
    if (linked := parse_link(link)) is not None:  # links written before ``signins`` existed
        found.add(linked[1])
    return sorted(found)


async def _unlink(state: AppState, anon: str, customers: list[str]) -> None:
    """Remove ``anon`` from each customer's sign-in records (one hash slot per transaction)."""
    k = state.keys
    for customer in customers:

        def read(p: Pipeline, c: str = customer) -> None:
            p.hget(k.shopper(c), "ab")

        (ab,) = await state.store.pipeline("erase_unlink", read, budget_s=ADMIN_BUDGET_S)

        def unlink(p: Pipeline, c: str = customer, ab: bytes | None = ab) -> None:
            p.srem(k.anons(c), anon)
            if ab is not None and ab.decode() == anon:
                p.hdel(k.shopper(c), "ab")

        await state.store.pipeline("erase_unlink", unlink, transaction=True,
                                   budget_s=ADMIN_BUDGET_S)  # fmt: skip


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
    customers = await _signed_in_as(state, sid)

    def tombstone(p: Pipeline) -> None:
        # First, so the processor drops the shopper's events from now on, and archive
        # readers and replays skip them even if what follows is interrupted.
        p.hset(k.tombstones, mapping={tombstone_digest(x): now_ms(state) for x in [sid, *anons]})

    await state.store.pipeline("erase_tombstone", tombstone, budget_s=ADMIN_BUDGET_S)

    deleted: list[int] = []
    for x in [sid, *anons]:  # one shopper (one hash slot) per transaction

        def delete(p: Pipeline, x: str = x) -> None:
            for key in (*k.shopper_keys(x), k.link(x), k.anons(x), k.signins(x)):
                p.delete(key)

        done = await state.store.pipeline(
            "erase_keys", delete, transaction=True, budget_s=ADMIN_BUDGET_S
        )
        deleted = deleted or done
    removed = [kind for kind, n in zip(_KINDS, deleted, strict=False) if n]
    await _unlink(state, sid, customers)
    elsewhere = await erase_archive(state, sid, customers)
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
