"""A real origin process (``p13n origin`` under uvicorn) on its own Redis, seeded with the
shop of ``tests.support.data`` in the formats of ``segmenter/schema.py``, and the self-hosted
edge in-process on a fake clock in front of it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from edge.proxy.app import EdgeRuntime, create_app
from tests.support.asgi import app_client
from tests.support.clock import FakeClock
from tests.support.proxy import proxy_settings
from tests.support.servers import OriginProcess, seeded_origin


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[OriginProcess]:
    """The origin process on a seeded Redis of its own; both stopped by PID at teardown."""
    with seeded_origin(tmp_path) as proc:
        yield proc


@pytest.fixture
def clock() -> FakeClock:
    """Now, frozen: the origin process signs and checks with the real time."""
    return FakeClock(time.time())


@pytest.fixture
async def edge(origin: OriginProcess, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """The edge app in-process in front of ``origin``, on ``clock``."""
    settings = proxy_settings(origin)
    runtime = EdgeRuntime.open(settings, clock=clock)
    app = create_app(settings, runtime)
    async with app_client(app, base_url="http://shop.test") as client:
        client.runtime = runtime  # type: ignore[attr-defined]
        yield client
