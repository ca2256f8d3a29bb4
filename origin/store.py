"""The Redis adapter: pipelined round trips within a budget, behind a circuit breaker.

Redis errors and timeouts are translated here, once, into ``StoreUnavailable`` (a 503
problem for admin callers; the recommendations endpoint turns it into a degraded answer).
An error reply to a command (WRONGTYPE and the like) is ``StoreRejected``, a 500 that does not
trip the breaker: only lost connections, timeouts and an unwell cluster do.
After a failure the breaker stays open for ``breaker_ms``: calls fail at once instead of
waiting out the budget against a dead server, then one call probes again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import (
    AskError,
    ClusterError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
    WatchError,
)

from origin.errors import Conflict, Unavailable
from origin.metrics import Metrics

__all__ = ["Clock", "RaceLost", "Store", "StoreRejected", "StoreUnavailable"]

Clock = Callable[[], float]
# Error replies that mean the store (or the cluster's topology) is unwell, not the command:
# they trip the breaker like a lost connection. Any other error reply (WRONGTYPE, a script
# error) is a fault of ours that a healthy server reports; tripping on it would turn one bad
# key into an outage of every caller.
_OUTAGE_REPLIES = (ClusterError, AskError, TryAgainError, ReadOnlyError, OutOfMemoryError)


class StoreUnavailable(Unavailable):
    """The online store is down, over its budget, or not configured."""

    slug, title = "store-unavailable", "Online store unavailable"


class StoreRejected(StoreUnavailable):
    """Redis refused a command (an error reply such as WRONGTYPE): a bug, not an outage.

    A ``StoreUnavailable`` so that degraded paths still degrade, but a 500 without
    Retry-After, and the breaker stays closed.
    """

    status, slug, title = 500, "store-rejected", "Online store rejected a command"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers.pop("Retry-After", None)


class RaceLost(Conflict):
    """A WATCHed key changed before EXEC: the transaction may be retried."""


class Store:
    """Round trips to Redis for one app: budgeted, measured, and short-circuited when down."""

    def __init__(
        self,
        redis: aioredis.Redis | None,
        *,
        budget_ms: int,
        breaker_ms: int,
        metrics: Metrics,
        clock: Clock = time.time,
    ) -> None:
        self.redis = redis
        self.budget_s = budget_ms / 1000
        self.breaker_s = breaker_ms / 1000
        self.metrics = metrics
        self.clock = clock
        self.open_until = 0.0
        self.last_error = ""
        # (op, outcome) -> its histogram series: ``labels()`` validates and locks per call
        self._series: dict[tuple[str, str], Any] = {}

    @property
    def client(self) -> aioredis.Redis:
        """The client, or ``StoreUnavailable`` when none is configured or the breaker is open."""
        if self.redis is None:
            raise StoreUnavailable("no Redis URL is configured")
        if self.clock() < self.open_until:
            raise StoreUnavailable(f"Redis failed recently ({self.last_error}); retrying soon")
        return self.redis

    def trip(self, reason: str) -> None:
        """Open the breaker for ``breaker_ms``."""
        self.last_error = reason
        self.open_until = self.clock() + self.breaker_s

    async def pipeline(
        self,
        op: str,
        build: Callable[[Pipeline], object],
        *,
        transaction: bool = False,
        budget_s: float | None = None,
    ) -> list[Any]:
        """Queue commands with ``build`` and run them as one round trip within the budget."""
        pipe = self.client.pipeline(transaction=transaction)
        build(pipe)
        result: list[Any] = await self.run(op, pipe.execute(), budget_s=budget_s)
        return result

    async def run(self, op: str, awaitable: Any, *, budget_s: float | None = None) -> Any:
        """Await one Redis coroutine within the budget; errors become ``StoreUnavailable``."""
        budget = self.budget_s if budget_s is None else budget_s
        start = time.perf_counter()
        outcome = "ok"
        try:
            async with asyncio.timeout(budget):
                return await awaitable
        except TimeoutError as exc:
            outcome = "timeout"
            self.trip(f"slower than {round(budget * 1000)} ms")
            raise StoreUnavailable(
                f"Redis did not answer within {round(budget * 1000)} ms"
            ) from exc
        except WatchError as exc:
            outcome = "conflict"
            raise RaceLost("a concurrent change won; retry the request") from exc
        except ResponseError as exc:
            if isinstance(exc, _OUTAGE_REPLIES):
                outcome = "error"
                self.trip(type(exc).__name__)
                raise StoreUnavailable(f"Redis error: {type(exc).__name__}") from exc
            outcome = "rejected"
            raise StoreRejected(f"Redis refused a command: {type(exc).__name__}") from exc
        except (RedisError, OSError) as exc:
            outcome = "error"
            self.trip(type(exc).__name__)
            raise StoreUnavailable(f"Redis error: {type(exc).__name__}") from exc
        finally:
            series = self._series.get((op, outcome))
            if series is None:
                series = self._series[op, outcome] = self.metrics.redis_seconds.labels(op, outcome)
            series.observe(time.perf_counter() - start)
