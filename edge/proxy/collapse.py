"""Request collapsing: concurrent fetches of one key share one origin request.

The first caller runs the fetch; the others await the same future for at most
``wait_timeout_s``. An error reaches every waiter once (they fall back to stale or default
answers) instead of each retrying the origin: no retry storm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Collapser", "LeaderGone"]

T = TypeVar("T")


class LeaderGone(TimeoutError):
    """The request whose fetch others waited on was cancelled: for the waiters it is as if
    the origin had not answered in time (they fall back; they are not cancelled)."""


class Collapser(Generic[T]):
    """Single-flight per key within one process."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}
        self._claimed: set[str] = set()
        self.collapsed = 0  # requests that waited on another's fetch
        self.background = 0  # background refreshes started (one per claim)

    def inflight(self, key: str) -> bool:
        return key in self._inflight

    def claim(self, key: str) -> bool:
        """Reserve ``key`` for one background refresh. False while a fetch of it runs or an
        earlier claim holds it: a refresh task that is spawned but has not run yet counts,
        so a burst of requests on a stale entry starts exactly one refresh."""
        if key in self._inflight or key in self._claimed:
            return False
        self._claimed.add(key)
        self.background += 1
        return True

    def release(self, key: str) -> None:
        """End a claim (the refresh finished, stored or failed)."""
        self._claimed.discard(key)

    async def run(self, key: str, fetch: Callable[[], Awaitable[T]], wait_timeout_s: float) -> T:
        """Run ``fetch`` once per key at a time; others share its result or its error."""
        return (await self.run_or_join(key, fetch, wait_timeout_s))[0]

    async def run_or_join(
        self, key: str, fetch: Callable[[], Awaitable[T]], wait_timeout_s: float
    ) -> tuple[T, bool]:
        """Like ``run``, also saying whether the result is another caller's (joined): a
        caller may then decide the result was not meant for it and fetch on its own."""
        existing = self._inflight.get(key)
        if existing is not None:
            self.collapsed += 1
            return await asyncio.wait_for(asyncio.shield(existing), wait_timeout_s), True
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await fetch()
        except BaseException as exc:
            shared = LeaderGone("the collapsed fetch was cancelled")
            future.set_exception(shared if isinstance(exc, asyncio.CancelledError) else exc)
            future.exception()  # mark retrieved: waiters may all have timed out already
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            del self._inflight[key]
