"""The applier of scheduled changes (``origin.admin.schedule`` queues them): every origin
process runs ``run``; a due job is claimed by the ``ZREM`` that removes it from the schedule,
which only one process wins, then applied as its kind says. The same tick runs the
guardrails' auto-stop (``origin.admin.autostop``), itself claimed by one process a round."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from origin.admin import invalidations, merch_rules
from origin.admin.autostop import check_auto_stop
from origin.admin.base import ADMIN_BUDGET_S, now_ms
from origin.auth import Caller
from origin.errors import OriginError
from origin.state import AppState

__all__ = ["run", "run_due"]

LOG = logging.getLogger("p13n.origin.schedule")
BATCH = 20  # jobs claimed per tick; the rest wait one tick


async def _apply(state: AppState, job: dict[str, Any]) -> dict[str, Any]:
    caller = Caller(job["role"], job["fingerprint"])
    p = job["payload"]
    if job["kind"] == "invalidation":
        rec = await invalidations.invalidate(
            state, caller, p["tags"], p["skus"], mode=p["mode"], reason=p["reason"],
            inv_id=p["id"], scheduled_for_ms=job["due_ms"],
        )  # fmt: skip
        return {"invalidation": rec["id"]}
    if job["kind"] == "rule.create":
        return {
            "invalidation": (await merch_rules.apply_create(state, caller, p["rule"]))[
                "invalidation"
            ]
        }
    return {
        "invalidation": (await merch_rules.apply_delete(state, caller, p["name"]))["invalidation"]
    }


async def _save(state: AppState, job: dict[str, Any]) -> None:
    await state.store.run(
        "schedule_save",
        state.store.client.hset(state.keys.schedule_jobs, job["id"], orjson.dumps(job)),
        budget_s=ADMIN_BUDGET_S,
    )


async def run_due(state: AppState) -> list[dict[str, Any]]:
    """Claim and apply the jobs due now (the app clock); the jobs this process applied."""
    client, keys = state.store.client, state.keys
    now = now_ms(state)
    due = await state.store.run(
        "schedule_due",
        client.zrangebyscore(keys.schedule, "-inf", now, start=0, num=BATCH),
        budget_s=ADMIN_BUDGET_S,
    )
    done = []
    for raw_id in due:
        won = await state.store.run("schedule_claim", client.zrem(keys.schedule, raw_id))
        if not won:
            continue  # another origin process claimed it first
        raw = await state.store.run("schedule_job", client.hget(keys.schedule_jobs, raw_id))
        if raw is None:
            continue
        job = orjson.loads(raw)
        job.update(status="claimed", claimed_ms=now)
        await _save(state, job)
        try:
            job["outcome"] = await _apply(state, job)
            job["status"] = "applied"
        except OriginError as exc:  # e.g. the rule was deleted meanwhile: say so, go on
            job.update(status="failed", detail=exc.detail)
        job["applied_ms"] = now_ms(state)
        await _save(state, job)
        done.append(job)
    return done


async def run(state: AppState, stop: asyncio.Event, tick_s: float) -> None:
    """Apply due jobs every ``tick_s`` until ``stop`` is set; survives any Redis failure."""
    next_check = 0.0  # this process's next guardrail round (monotonic seconds)
    while not stop.is_set():
        try:
            await run_due(state)
        except Exception as exc:  # keep the loop alive whatever Redis does
            LOG.debug("scheduled changes: %s", type(exc).__name__)  # retried next tick
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + state.settings.guardrail_check_s
            try:
                await check_auto_stop(state)
            except Exception as exc:  # the next round's claimer tries again
                LOG.debug("guardrail auto-stop: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick_s)
