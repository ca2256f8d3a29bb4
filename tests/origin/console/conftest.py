"""Browser fixtures: Debian's Chromium under Playwright, a real origin process on its own
Redis (seeded with catalog and segment lists), and a real edge process in front of it.

Chromium is Debian's package at /usr/bin/chromium (``make setup`` installs it as root); the
Playwright wheel brings its own driver, and ``playwright install`` is never needed. Without
the binary the browser tests fail at once naming the package: they never skip.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from playwright.sync_api import Browser, BrowserType, Playwright, sync_playwright

from ops.local.redis import RedisServer
from origin.app import create_app
from origin.settings import Settings
from tests.support import data
from tests.support.asgi import app_client
from tests.support.browser import ConsoleStack
from tests.support.servers import EdgeProcess, OriginProcess, origin_env
from tests.support.timing import scaled

CHROMIUM = "/usr/bin/chromium"
# Nothing may leave the machine: no background services, and no DNS look-ups but loopback.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]
PAGE_TIMEOUT_S = 10.0  # nominal: scaled by the session's slowdown like every test deadline


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright launches Debian's Chromium with the arguments above."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's package 'chromium' "
            "(`make setup` does it as root; else `apt-get install chromium` as root)",
            pytrace=False,
        )
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": LAUNCH_ARGS,
        "headless": True,
    }


# pytest-playwright keeps one Playwright (and browser) for the whole session. Its sync API
# leaves its event loop marked as running in this thread between calls, so every anyio test
# after it would fail ("another loop is running"). Here they live for one module and are
# stopped after it.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()  # unmarks its loop


@pytest.fixture(scope="module")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return getattr(playwright, browser_name)


@pytest.fixture(scope="module")
def browser(browser_type: BrowserType, browser_type_launch_args: dict) -> Iterator[Browser]:
    browser = browser_type.launch(**browser_type_launch_args)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def browser_context_args() -> dict:
    return {}


@pytest.fixture(scope="session")
def base_url() -> None:
    """Pages are opened by the origin's full URL. This also replaces pytest-playwright's
    fallback ``base_url``, a session fixture on a plugin instance, which pytest 9 deprecates
    (a warning, so an error here)."""
    return None


@pytest.fixture
def page(page):
    """Playwright's page, with a bounded wait for every action (scaled: a loaded machine
    answers a click later, as every other deadline allows)."""
    page.set_default_timeout(scaled(PAGE_TIMEOUT_S) * 1000)
    return page


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Any]:
    """The console's app in process on the test's Redis (pages over HTTP, no browser)."""
    settings = Settings(redis_url=redis_url, admin_tokens=dict(data.TOKENS), partitions=2)
    async with app_client(create_app(settings)) as c:
        yield c


@pytest.fixture
def redis_url(single_redis_url: str) -> str:
    """One Redis: the console's pages read the API, whose cluster variant tests/origin runs."""
    return single_redis_url


def console_env(redis_url: str) -> dict[str, str]:
    """The origin's environment for the console's tests."""
    return origin_env(
        redis_url,
        P13N_CONSOLE_SIGNING="c1:console-test-secret-0123456789",
        P13N_REFRESH_MS="100",
        P13N_EDGE_CONFIG_MAX_AGE_S="1",
        P13N_EDGE_LIVE_S="10",
        P13N_PARTITIONS="4",
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    """One origin process (uvicorn on a free 127.0.0.1 port) on its own seeded Redis."""
    with RedisServer(data_dir=tmp_path_factory.mktemp("redis")) as server:
        client = redis.Redis.from_url(server.url)
        try:
            data.seed_shop(client)
            log_dir = tmp_path_factory.mktemp("origin")
            with OriginProcess(server, console_env(server.url), log_dir=log_dir) as proc:
                yield ConsoleStack(proc, client)
        finally:
            client.close()


@pytest.fixture(scope="module")
def edge(stack: ConsoleStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """``p13n edge`` in front of the origin: pushed purges from Redis, heartbeats."""
    env = {
        **console_env(stack.origin.redis.url),
        "P13N_EDGE_ID": "edge-console",
        "P13N_EDGE_HEARTBEAT_S": "0.3",
        "P13N_EDGE_SERVICE_TOKEN": data.SERVICE,
    }
    with EdgeProcess(stack.origin, env, log_dir=tmp_path_factory.mktemp("edge")) as edge:
        yield edge
