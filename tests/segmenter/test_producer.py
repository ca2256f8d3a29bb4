"""The producer client against the real collector (the origin app in-process, real Redis)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from origin.app import create_app
from origin.settings import Settings
from segmenter.connection import connect_sync
from segmenter.producer import Producer, ProducerSettings
from segmenter.schema import Keys
from tests.support.asgi import app_client
from tests.support.timing import async_wait_until

pytestmark = pytest.mark.anyio
KEYS = Keys()
PARTITIONS = 2


def stream_ids(redis_url: str) -> list[str]:
    """The event ids on every partition stream."""
    import msgpack  # noqa: PLC0415

    r = connect_sync(redis_url)
    try:
        out = []
        for p in range(PARTITIONS):
            for _, f in r.xrange(KEYS.stream(p)):
                out.append(msgpack.unpackb(f[b"e"])["event_id"])
        return out
    finally:
        r.close()


class Recorder(httpx.AsyncBaseTransport):
    """Records request bodies; fails the first ``fail`` requests after the collector answered
    (the answer is lost, as on a dropped connection), so a retry resends the same batch."""

    def __init__(self, inner: httpx.AsyncBaseTransport, fail: int = 0, status: int = 0) -> None:
        self.inner, self.fail, self.status = inner, fail, status
        self.bodies: list[list[dict]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.bodies.append(orjson.loads(body)["events"])
        if self.fail and self.status:
            self.fail -= 1
            return httpx.Response(self.status, headers={"retry-after": "1"})
        response = await self.inner.handle_async_request(request)
        if self.fail:
            self.fail -= 1
            await response.aread()
            raise httpx.ReadError("connection dropped before the answer")
        return response


@pytest.fixture
async def origin(redis_url):
    """The collector's app with its lifespan running, and a transport into it."""
    settings = Settings(redis_url=redis_url, segment_key=b"k" * 32, partitions=PARTITIONS)
    app = create_app(settings)
    async with app_client(app):
        yield httpx.ASGITransport(app=app)


@pytest.fixture
async def clients():
    made: list[httpx.AsyncClient] = []
    yield made
    for c in made:
        await c.aclose()


def producer(clients, transport, **over) -> tuple[Producer, list[float]]:
    client = httpx.AsyncClient(transport=transport)
    clients.append(client)
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    cfg = ProducerSettings("http://origin.test", **over)
    return Producer(client, cfg, sleep=sleep), waits


async def test_batches_are_sent_on_close_and_land_on_the_streams(
    clients, origin, redis_url
) -> None:
    rec = Recorder(origin)
    p, _ = producer(clients, rec, batch_max=100, flush_interval_s=60)
    async with p:
        for n in range(250):
            assert p.send("view", user=f"u{n % 7}", item=f"sku-{n}")
    assert [len(b) for b in rec.bodies] == [100, 100, 50]
    assert p.stats.accepted == 250 and p.pending == 0
    sent = [e["event_id"] for b in rec.bodies for e in b]
    assert sorted(stream_ids(redis_url)) == sorted(sent) and len(set(sent)) == 250


async def test_a_lost_answer_is_retried_with_the_same_event_ids(clients, origin, redis_url) -> None:
    rec = Recorder(origin, fail=2)
    p, waits = producer(clients, rec, backoff_s=0.1)
    for n in range(5):
        p.send("add_to_cart", user="u1", item=f"sku-{n}")
    await p.flush()
    assert len(rec.bodies) == 3 and rec.bodies[0] == rec.bodies[1] == rec.bodies[2]
    assert p.stats.retries == 2 and p.stats.accepted == 5
    assert len(waits) == 2 and waits[1] > waits[0] / 2  # backoff doubles (with jitter)
    # the collector saw the batch three times; the processor dedupes by these ids
    assert sorted(stream_ids(redis_url)) == sorted([e["event_id"] for e in rec.bodies[0]] * 3)


async def test_a_batch_that_keeps_failing_stays_buffered(clients, origin) -> None:
    rec = Recorder(origin, fail=3, status=503)
    p, waits = producer(clients, rec, attempts=3)
    p.send("view", user="u1", item="sku-1")
    await p.flush()
    assert p.pending == 1 and p.stats.accepted == 0 and "503" in p.stats.last_error
    assert waits == [1.0, 1.0]  # Retry-After honoured
    await p.flush()
    assert p.pending == 0 and p.stats.accepted == 1
    assert rec.bodies[0] == rec.bodies[-1]


async def test_the_buffer_is_bounded_and_drops_are_counted(clients, origin) -> None:
    p, _ = producer(clients, origin, buffer_max=10)
    results = [p.send("view", user="u1", item=f"sku-{n}") for n in range(15)]
    assert results.count(False) == 5 and p.stats.dropped == 5 and p.pending == 10


async def test_invalid_events_are_counted_as_rejected(clients, origin) -> None:
    p, _ = producer(clients, origin)
    p.send("view", user="u1", item="sku-1")
    p.send("view", user="u1")  # a view without an item
    stats = await p.flush()
    assert stats.accepted == 1 and stats.rejected == 1
    assert stats.rejections[0]["field"] == "item" and stats.rejections[0]["event_id"]


async def test_the_background_task_flushes_on_its_interval(clients, origin, redis_url) -> None:
    client = httpx.AsyncClient(transport=origin)
    clients.append(client)
    p = Producer(client, ProducerSettings("http://origin.test", flush_interval_s=0.02))
    async with p:
        p.send("view", user="u1", item="sku-1")
        await async_wait_until(lambda: p.stats.accepted, 5, "the interval flush")
        assert p.stats.accepted == 1 and len(stream_ids(redis_url)) == 1
