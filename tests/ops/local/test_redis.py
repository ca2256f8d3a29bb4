"""The test harness itself: real servers, free ports, durability, kill and restart."""

from __future__ import annotations

import os
import signal

import pytest
import redis

from ops.local.redis import FORBIDDEN_PORTS, RedisServer, RedisServerError, find_redis_server


def test_session_server_is_real_and_not_on_6379(redis_server: RedisServer) -> None:
    assert redis_server.port not in FORBIDDEN_PORTS
    client = redis.Redis.from_url(redis_server.url)
    info = client.info("server")
    assert info["tcp_port"] == redis_server.port
    assert client.config_get("appendonly")["appendonly"] == "no"
    assert client.config_get("save")["save"] == ""
    client.close()


def test_isolation_first(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("leak", "1")


def test_isolation_second(redis_client: redis.Redis) -> None:
    assert redis_client.get("leak") is None


def test_aof_server_keeps_acknowledged_writes_across_kill(redis_factory) -> None:
    server = redis_factory(aof=True)
    client = redis.Redis.from_url(server.url)
    for i in range(100):
        client.xadd("s", {"i": i})
    client.close()
    server.kill()  # SIGKILL: no shutdown save; only the AOF can bring the data back
    server.start()
    client = redis.Redis.from_url(server.url)
    assert client.xlen("s") == 100
    client.close()


def test_killed_server_refuses_then_restarts(redis_factory) -> None:
    server = redis_factory()
    server.kill()
    assert server.process.poll() == -signal.SIGKILL
    assert not server.ping()
    server.start()
    assert server.ping()


def test_refuses_well_known_port() -> None:
    with pytest.raises(RedisServerError):
        RedisServer(port=6379)


def test_binary_override_must_be_executable(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("P13N_REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(RedisServerError, match="not an executable"):
        find_redis_server()


def test_stop_by_pid_leaves_no_process(redis_factory) -> None:
    server = redis_factory()
    pid = server.process.pid
    server.stop()
    assert server.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, signal.SIG_DFL)
