"""The load generator's retries and its look at itself (no sockets: httpx.MockTransport)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from ops import traffic
from ops.traffic import LoadVerdict, retry_after_s, send


def _client(answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def test_a_503_then_a_429_are_retried_after_their_retry_after(monkeypatch) -> None:
    waits: list[float] = []

    async def fake_sleep(s: float) -> None:
        waits.append(s)

    monkeypatch.setattr(traffic.asyncio, "sleep", fake_sleep)
    seen: list[httpx.Request] = []
    answers = [
        httpx.Response(503, headers={"retry-after": "2"}),
        httpx.Response(429, headers={"retry-after": "1"}),
        httpx.Response(202, json={"accepted": 1}),
    ]
    retries: Counter[str] = Counter()

    async def go() -> httpx.Response:
        async with _client(answers, seen) as http:
            return await send(http, "POST", "http://edge/v1/events", retries, json={"a": 1})

    r = asyncio.run(go())
    assert r.status_code == 202 and len(seen) == 3
    assert all(req.content == b'{"a":1}' for req in seen)  # the same body every time
    assert waits == [2.0, 1.0] and retries == Counter({"503": 1, "429": 1})


def test_retries_are_bounded_and_the_last_answer_is_returned(monkeypatch) -> None:
    async def fake_sleep(s: float) -> None:
        return None

    monkeypatch.setattr(traffic.asyncio, "sleep", fake_sleep)
    seen: list[httpx.Request] = []
    answers = [httpx.Response(429) for _ in range(traffic.MAX_ATTEMPTS)]
    retries: Counter[str] = Counter()

    async def go() -> httpx.Response:
        async with _client(answers, seen) as http:
            return await send(http, "GET", "http://o/x", retries)

    assert asyncio.run(go()).status_code == 429
    assert len(seen) == traffic.MAX_ATTEMPTS and retries["429"] == traffic.MAX_ATTEMPTS - 1


def test_retry_after_is_read_as_seconds_capped_and_defaulted() -> None:
    def wait(value: str | None) -> float:
        headers = {"retry-after": value} if value is not None else {}
        return retry_after_s(httpx.Response(503, headers=headers))

    assert wait("3") == 3.0
    assert wait("3600") == traffic.MAX_WAIT_S
    assert wait(None) == traffic.DEFAULT_WAIT_S
    assert wait("Wed, 21 Oct 2015 07:28:00 GMT") == traffic.DEFAULT_WAIT_S


def test_the_machine_is_named_the_bottleneck_only_when_it_was() -> None:
    fine = LoadVerdict(offered_per_s=40, achieved_per_s=39.5, cpu_share=0.3, cores=2,
                       load_average=1.0)  # fmt: skip
    slow = LoadVerdict(offered_per_s=150, achieved_per_s=96, cpu_share=0.5, cores=2,
                       load_average=3.0)  # fmt: skip
    busy = LoadVerdict(offered_per_s=40, achieved_per_s=40, cpu_share=0.95, cores=2,
                       load_average=2.5)  # fmt: skip
    assert not fine.machine_bound and not any("MACHINE" in ln for ln in fine.lines())
    assert slow.machine_bound and busy.machine_bound
    assert any("MACHINE is the bottleneck" in ln for ln in slow.lines())
    assert "achieved 96.0/s" in slow.lines()[1] and "own CPU 50% of one core" in slow.lines()[1]
