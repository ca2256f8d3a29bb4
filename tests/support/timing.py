"""Deadlines that scale with the machine, and polls that wait on a condition, never a guess.

Every readiness wait and every "until this holds" loop in the tests takes its deadline from
``scaled``: the nominal seconds times one factor for the session. The factor is
``P13N_TEST_SLOWDOWN`` when set (CI on a shared runner might say 3), else measured once from
how busy the machine is when the session starts: ``max(1, load average / CPUs)``, so a run
beside a CPU-heavy job waits longer before calling something hung. A passing test never
waits for a deadline, so a large factor costs nothing; it only delays a real failure.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable

__all__ = ["POLL_S", "async_wait_until", "scaled", "slowdown", "wait_until"]

ENV_SLOWDOWN = "P13N_TEST_SLOWDOWN"
POLL_S = 0.02  # between two looks at a condition: short, the condition is cheap


@functools.cache
def slowdown() -> float:
    """The session's factor for every deadline (see the module docstring)."""
    explicit = os.environ.get(ENV_SLOWDOWN)
    if explicit:
        factor = float(explicit)
        if factor < 1:
            raise ValueError(f"{ENV_SLOWDOWN}={explicit}: below 1 it would only cut deadlines")
        return factor
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def scaled(seconds: float) -> float:
    """``seconds`` of nominal deadline on this machine, in this session."""
    return seconds * slowdown()


def wait_until(
    condition: Callable[[], object],
    timeout_s: float,
    what: str,
    *,
    interval_s: float = POLL_S,
) -> object:
    """Poll ``condition`` until it returns something truthy (returned) or the scaled deadline
    passes (``AssertionError`` naming ``what``)."""
    deadline = time.monotonic() + scaled(timeout_s)
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {scaled(timeout_s):.1f} s")
        time.sleep(interval_s)


async def async_wait_until(
    condition: Callable[[], object | Awaitable[object]],
    timeout_s: float,
    what: str,
    *,
    interval_s: float = POLL_S,
) -> object:
    """``wait_until`` for the event loop: ``condition`` may be a coroutine function."""
    deadline = time.monotonic() + scaled(timeout_s)
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {scaled(timeout_s):.1f} s")
        await asyncio.sleep(interval_s)
