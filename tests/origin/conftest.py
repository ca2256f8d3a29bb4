"""Origin fixtures: settings with tokens for every role, a fake clock, the app on real Redis.

Every test that touches Redis runs twice: on one Redis and on a real Redis Cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from origin.app import create_app
from origin.settings import Settings
from tests.support.asgi import app_client
from tests.support.backends import BACKENDS
from tests.support.clock import FakeClock
from tests.support.data import NOW_MS, SEGMENT_KEY, TOKENS
from tests.support.timing import scaled


@pytest.fixture(params=BACKENDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    """The emptied store of the variant: ``single`` or ``cluster``."""
    return str(request.getfixturevalue(f"{request.param}_redis_url"))


@pytest.fixture
def clock() -> FakeClock:
    """The app's clock, at the seed data's ``NOW_MS`` until a test ticks it."""
    return FakeClock(NOW_MS / 1000)


@pytest.fixture
def settings(redis_url: str, tmp_path) -> Settings:
    return Settings(
        redis_url=redis_url,
        archive_dir=str(tmp_path / "archive"),
        segment_key=SEGMENT_KEY,
        admin_tokens=dict(TOKENS),
        # The store's budget is not under test here (test_degraded's is): it scales with
        # the machine, so a loaded run does not turn a slow answer into a 503.
        redis_timeout_ms=round(scaled(1000)),
        partitions=2,
    )


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator:
    app = create_app(settings, clock=clock)
    async with app_client(app) as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
