"""Shared fixtures: a real redis-server per session, isolation per test, extra servers.

A test that needs Redis never skips: if no server can be started the run fails and says why.
Folders whose tests must also hold on Redis Cluster parametrize ``redis_url`` over
``tests.support.backends.BACKENDS`` (see ``tests/segmenter/conftest.py``): the ``cluster``
variant runs the same assertions against one session-wide local cluster of 3 masters and 3
replicas. Helpers the tests import live in ``tests/support/``, never in a conftest.

SIGTERM (``timeout`` ending a run) stops the run as Ctrl-C does, so every fixture's finalizer
still stops the servers it started; a run killed outright leaves none either, as each server
dies with the process that started it (``ops.local.process.die_with_parent``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest
import redis

from ops.local.cluster import LocalCluster
from ops.local.redis import RedisServer, RedisServerError
from segmenter.connection import connect_sync
from tests.support.backends import cluster_url_of

_previous_sigterm: object = None


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Once: ``timeout`` signals the child and then its whole group, so a second SIGTERM
    # would arrive in the middle of the teardown the first one started.
    signal.signal(signal.SIGTERM, _ignore)
    # What Ctrl-C raises, not pytest.exit: that is an ``Exception``, which an asyncio callback
    # or a test's ``except Exception`` would swallow, and the run would carry on.
    raise KeyboardInterrupt(f"signal {signum}")


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A handler, not SIG_IGN: an ignored signal would stay ignored in children started in
    teardown, and they could not be stopped with SIGTERM."""


def pytest_configure(config: pytest.Config) -> None:
    global _previous_sigterm  # restored by pytest_unconfigure
    _previous_sigterm = signal.signal(signal.SIGTERM, _stop_on_sigterm)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _previous_sigterm is not None:
        signal.signal(signal.SIGTERM, _previous_sigterm)  # type: ignore[arg-type]


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


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """One throwaway Redis Cluster (3 masters, 3 replicas) for the whole session."""
    try:
        cluster = LocalCluster().start()
    except RedisServerError as exc:
        pytest.fail(f"cannot start a test Redis Cluster: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def single_redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session server's URL, emptied before each test for isolation."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def cluster_redis_url(redis_cluster: LocalCluster) -> Iterator[str]:
    """The session cluster's URL, every master emptied before each test."""
    url = cluster_url_of(redis_cluster)
    client = connect_sync(url)
    client.flushall()  # redis-py sends it to every primary
    client.close()
    yield url


@pytest.fixture
def redis_url(single_redis_url: str) -> str:
    """The store URL tests run against (a single server unless a folder parametrizes it)."""
    return single_redis_url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client (single or cluster, as ``redis_url`` says) on the emptied store."""
    client = connect_sync(redis_url)
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
