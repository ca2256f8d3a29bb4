"""Request collapsing and the circuit breaker."""

from __future__ import annotations

import asyncio

import pytest

from edge.proxy.breaker import CircuitBreaker
from edge.proxy.collapse import Collapser, LeaderGone


@pytest.mark.anyio
async def test_fifty_concurrent_calls_make_one_fetch() -> None:
    collapser: Collapser[int] = Collapser()
    calls = 0
    gate = asyncio.Event()

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    tasks = [asyncio.create_task(collapser.run("k", fetch, 5)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*tasks) == [42] * 50
    assert calls == 1 and collapser.collapsed == 49 and not collapser.inflight("k")


@pytest.mark.anyio
async def test_error_reaches_waiters_once_without_retries() -> None:
    collapser: Collapser[int] = Collapser()
    calls = 0
    gate = asyncio.Event()

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise ConnectionError("origin down")

    tasks = [asyncio.create_task(collapser.run("k", fetch, 5)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, ConnectionError) for r in results)


async def _never() -> int:
    """A fetch that never answers."""
    await asyncio.Event().wait()
    return 1


async def _stuck_leader(collapser: Collapser[int]) -> asyncio.Task[int]:
    """A leader whose fetch never ends, already in flight."""
    leader = asyncio.create_task(collapser.run("k", _never, 5))
    await asyncio.sleep(0)
    return leader


@pytest.mark.anyio
async def test_waiters_are_bounded() -> None:
    collapser: Collapser[int] = Collapser()
    leader = await _stuck_leader(collapser)
    with pytest.raises(TimeoutError):
        await collapser.run("k", _never, 0.01)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader


@pytest.mark.anyio
async def test_a_cancelled_leader_does_not_cancel_its_waiters() -> None:
    collapser: Collapser[int] = Collapser()
    leader = await _stuck_leader(collapser)
    waiter = asyncio.create_task(collapser.run("k", _never, 5))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(LeaderGone):  # a TimeoutError: callers fall back as on a slow origin
        await waiter
    assert not waiter.cancelled() and isinstance(LeaderGone(), TimeoutError)
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert not collapser.inflight("k")


def test_breaker_opens_half_opens_and_closes() -> None:
    now = [0.0]
    b = CircuitBreaker(failure_threshold=3, reset_timeout_s=10, clock=lambda: now[0])
    for _ in range(3):
        assert b.allow()
        b.record_failure()
    assert b.state == "open" and not b.allow()
    now[0] = 10.0
    assert b.state == "half-open"
    assert b.allow() and not b.allow()  # exactly one trial request
    b.record_failure()
    assert b.state == "open"
    now[0] = 20.0
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.allow()
