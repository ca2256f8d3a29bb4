"""Browser fixtures: Debian's Chromium under Playwright, a real origin process on its own
Redis (seeded with catalog and segment lists), and a real edge process in front of it.

Chromium is Debian's package at /usr/bin/chromium (``make setup`` installs it as root); the
Playwright wheel brings its own driver, and ``playwright install`` is never needed. Without
the binary the browser tests fail at once naming the package: they never skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser, BrowserType, Playwright, sync_playwright

from ops.local.redis import RedisServer, free_port
from tests.edge.proxy.conftest import SIGNING, OriginProcess, seed
from tests.origin import data

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
PAGE_TIMEOUT_MS = 10_000


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
    """Playwright's page, with a bounded wait for every action."""
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return page


def origin_env(redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.update(
        {
            "P13N_REDIS_URL": redis_url,
            "P13N_SEGMENT_KEY": data.SEGMENT_KEY.decode(),
            "P13N_SEGMENT_SIGNING": SIGNING,
            "P13N_CONTEXT_SIGNING": SIGNING,
            "P13N_CONSOLE_SIGNING": "c1:console-test-secret-0123456789",
            "P13N_ADMIN_TOKENS": ",".join(f"{role}:{tok}" for tok, role in data.TOKENS.items()),
            "P13N_REFRESH_MS": "100",
            "P13N_EDGE_CONFIG_MAX_AGE_S": "1",
            "P13N_EDGE_LIVE_S": "10",
            "P13N_PARTITIONS": "4",
        }
    )
    return env


@dataclass
class Stack:
    """The origin under test and a client of its Redis."""

    origin: OriginProcess
    redis: redis.Redis

    @property
    def url(self) -> str:
        return self.origin.url

    def api(self, method: str, path: str, token: str, **kw) -> httpx.Response:
        return httpx.request(method, self.url + path, headers=data.bearer(token), timeout=5, **kw)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """One origin process (uvicorn on a free 127.0.0.1 port) on its own seeded Redis."""
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis")).start()
    client = redis.Redis.from_url(server.url)
    seed(client)
    proc = OriginProcess(server, free_port(), origin_env(server.url))
    try:
        proc.start()
        yield Stack(proc, client)
    finally:
        proc.kill()
        client.close()
        server.close()


@dataclass
class EdgeProcess:
    """``p13n edge`` in front of the origin: pushed purges from Redis, heartbeats."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def edge(stack: Stack, tmp_path_factory) -> Iterator[EdgeProcess]:
    port, admin_port = free_port(), free_port()
    env = origin_env(stack.origin.redis.url)
    env.update(
        {
            "SEGMENT_KEYS": SIGNING,
            "CONTEXT_KEYS": SIGNING,
            "P13N_EDGE_ID": "edge-console",
            "P13N_EDGE_HEARTBEAT_S": "0.3",
            "P13N_EDGE_SERVICE_TOKEN": data.SERVICE,
        }
    )
    log = Path(tmp_path_factory.mktemp("edge")) / "edge.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "edge", "--origin", stack.url,
             "--port", str(port), "--admin-port", str(admin_port),
             "--redis-url", stack.origin.redis.url],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{admin_port}/healthz", timeout=0.5).is_success:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"edge did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield EdgeProcess(port, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
