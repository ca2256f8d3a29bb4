"""Scheduled admin changes: invalidations and merchandising rules that carry a ``when``.

A job is queued in Redis (``Keys.schedule``: a sorted set of job ids by due epoch ms, and
``Keys.schedule_jobs``: id -> JSON job), so it survives restarts. Every origin process
runs the applier (``origin.admin.scheduler.run``); a due job is claimed by the ``ZREM``
that removes it, which only one process can win, so a job is applied once however many
origins run. A process killed
between its claim and the job's end leaves the job ``claimed`` in the job hash (visible in
the purge log and the rules list), never applied twice.

``when`` is epoch milliseconds or an RFC 3339 time with its offset
(``2026-12-24T08:00:00Z``); a past or garbled one is a 422 naming the field.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import orjson

from cache_keys.wire._check import whole_number
from origin.admin.base import ADMIN_BUDGET_S, now_ms
from origin.auth import Caller
from origin.errors import Unprocessable
from origin.state import AppState

__all__ = ["JOB_KINDS", "enqueue", "jobs", "parse_time", "parse_when"]

JOB_KINDS = ("invalidation", "rule.create", "rule.delete")
MAX_AHEAD_MS = 366 * 86_400_000  # a year: anything later is a typo


def parse_time(value: Any, field: str) -> int:
    """Epoch ms from epoch ms or an RFC 3339 time with an offset; 422 naming ``field``.

    >>> parse_time("2026-12-24T08:00:00Z", "when"), parse_time(1798099200000, "when")
    (1798099200000, 1798099200000)
    """
    if isinstance(value, str) and not value.isdigit():
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise Unprocessable(
                f"{field} must be epoch milliseconds or an RFC 3339 time such as "
                f"2026-12-24T08:00:00Z", field=field,
            ) from exc  # fmt: skip
        if moment.tzinfo is None:
            raise Unprocessable(f"{field} needs a UTC offset (Z or +01:00)", field=field)
        return int(moment.timestamp() * 1000)
    ms = whole_number(int(value)) if isinstance(value, str) else whole_number(value)
    if ms is None or isinstance(value, bool) or not 0 <= ms < 2**53:
        raise Unprocessable(f"{field} must be epoch milliseconds or an RFC 3339 time", field=field)
    return ms


def parse_when(value: Any, now: int) -> int:
    """A ``when`` in the future (within a year), as epoch ms; 422 otherwise."""
    due = parse_time(value, "when")
    if due <= now:
        raise Unprocessable(f"when is in the past ({due} <= now {now})", field="when")
    if due - now > MAX_AHEAD_MS:
        raise Unprocessable("when is more than a year ahead", field="when")
    return due


async def enqueue(
    state: AppState, caller: Caller, kind: str, payload: dict[str, Any], due_ms: int
) -> dict[str, Any]:
    """Queue one job (with its own id); the job as stored."""
    ms = now_ms(state)
    job = {
        "id": payload.get("id") or f"job-{ms}-{secrets.token_hex(4)}",
        "kind": kind,
        "payload": payload,
        "due_ms": due_ms,
        "role": caller.role,
        "fingerprint": caller.fingerprint,
        "who": caller.who,
        "created_ms": ms,
        "status": "scheduled",
    }
    keys = state.keys

    def build(p: Any) -> None:
        p.hset(keys.schedule_jobs, job["id"], orjson.dumps(job))
        p.zadd(keys.schedule, {job["id"]: due_ms})

    await state.store.pipeline("schedule", build, transaction=True, budget_s=ADMIN_BUDGET_S)
    return job


async def jobs(state: AppState) -> list[dict[str, Any]]:
    """Every job (scheduled, claimed, applied, failed), soonest due first."""
    raw = await state.store.run(
        "schedule_jobs", state.store.client.hgetall(state.keys.schedule_jobs)
    )
    return sorted((orjson.loads(v) for v in raw.values()), key=lambda j: j["due_ms"])
