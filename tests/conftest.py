"""Shared fixtures: a real redis-server per session, isolation per test, extra servers.

A test that needs Redis never skips: if no server can be started the run fails and says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from origin.localredis import RedisServer, RedisServerError

VECTOR_DIR = Path(__file__).parent / "vectors"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One throwaway redis-server (persistence off) on a free loopback port."""
    try:
        server = RedisServer().start()
    except RedisServerError as exc:
        pytest.fail(f"cannot start a test redis-server: {exc} (run `make setup`)", pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session server's URL, emptied before each test for isolation."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client on the emptied session server."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start extra servers (``aof=True`` for durability tests); all stopped at teardown."""
    servers: list[RedisServer] = []

    def make(*, aof: bool = False, extra_args: tuple[str, ...] = ()) -> RedisServer:
        data_dir = tmp_path / f"redis-{len(servers)}"
        data_dir.mkdir()
        server = RedisServer(aof=aof, data_dir=data_dir, extra_args=extra_args)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the origin's and the edge's event loop)."""
    return "asyncio"
