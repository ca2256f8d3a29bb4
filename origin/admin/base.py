"""What every admin endpoint shares: the transaction helper, audit entries, strict inputs.

Every change is one MULTI/EXEC on ``{admin}`` keys (one Cluster slot) holding the change,
its audit entry (who, when, before, after) and a bump of the config version; the keys the
change depends on are WATCHed, so a concurrent change makes it retry, then a 409.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from redis.asyncio.client import Pipeline
from starlette.requests import Request

from origin.auth import Caller
from origin.errors import BadRequest, Conflict
from origin.state import AppState
from origin.store import RaceLost
from segmenter.schema import ADMIN_AUDIT_MAXLEN

__all__ = [
    "ADMIN_BUDGET_S",
    "audit",
    "json_object",
    "now_ms",
    "page_end",
    "query",
    "transact",
]

T = TypeVar("T")
# Admin calls are rare and may touch many keys; they get a wider budget than shoppers'.
ADMIN_BUDGET_S = 2.0
RETRIES = 3


def now_ms(state: AppState) -> int:
    """The app clock in epoch milliseconds."""
    return int(state.clock() * 1000)


def query(request: Request, allowed: set[str]) -> dict[str, str]:
    """The query parameters, 400 for any not in ``allowed``."""
    q = dict(request.query_params)
    unknown = set(q) - allowed
    if unknown:
        raise BadRequest(f"unknown query parameters {sorted(unknown)}", field=sorted(unknown)[0])
    return q


def page_end(before: str | None) -> str | None:
    """The XREVRANGE end of a newest-first page after the cursor ``before`` (an entry id,
    already checked): ``+`` without one, None when no entry can come before it. Redis
    refuses ``(0-0`` as an interval end (an error, once a 500), and nothing precedes 0-0.

    >>> page_end(None), page_end("1764000000000-3"), page_end("0-00")
    ('+', '(1764000000000-3', None)
    """
    if before is None:
        return "+"
    ms, _, seq = before.partition("-")
    if int(ms) == 0 and int(seq or "0") == 0:
        return None
    return f"({before}"


def json_object(
    doc: Any, allowed: set[str], required: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    """``doc`` as an object with only ``allowed`` fields and every ``required`` one."""
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object", field="$")
    unknown = set(doc) - allowed
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}", field=sorted(unknown)[0])
    missing = required - set(doc)
    if missing:
        raise BadRequest(f"missing fields {sorted(missing)}", field=sorted(missing)[0])
    return doc


def audit(
    pipe: Pipeline,
    state: AppState,
    caller: Caller,
    action: str,
    target: str,
    *,
    before: Any,
    after: Any,
) -> None:
    """Queue one audit entry (in the caller's transaction)."""
    fields: dict[Any, Any] = {
        "ms": now_ms(state),
        "who": caller.who,
        "action": action,
        "target": target,
        "before": orjson.dumps(before),
        "after": orjson.dumps(after),
    }
    pipe.xadd(state.keys.audit, fields, maxlen=ADMIN_AUDIT_MAXLEN, approximate=True)


async def transact(
    state: AppState,
    op: str,
    watch: list[str],
    read: Callable[[Pipeline], Awaitable[T]],
    write: Callable[[Pipeline, T], Any],
) -> Any:
    """WATCH ``watch``, ``read`` the current state, queue ``write``, EXEC; retry on a race."""
    for _ in range(RETRIES):

        async def attempt() -> tuple[bool, Any]:
            async with state.store.client.pipeline(transaction=True) as pipe:
                await pipe.watch(*watch)
                current = await read(pipe)
                pipe.multi()  # type: ignore[no-untyped-call]
                result = write(pipe, current)
                pipe.incr(state.keys.config_version)
                await pipe.execute()
                return True, result

        try:
            _, result = await state.store.run(op, attempt(), budget_s=ADMIN_BUDGET_S)
        except RaceLost:
            continue
        with contextlib.suppress(Exception):  # this worker sees its own change at once
            await state.snapshot.refresh()
        return result
    raise Conflict(f"{op}: concurrent changes kept winning; retry the request")
