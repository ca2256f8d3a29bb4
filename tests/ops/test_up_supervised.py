"""``p13n up`` supervises: killing the processor, the origin, the edge or the stack's own
Redis leaves the other parts serving (they reconnect to a Redis that comes back on the same
port with its data), and the killed one is back within 10 s (scaled by the
session's slowdown); tokens, keys and ports stay; only Ctrl-C stops the stack.

A real stack (Redis, uvicorn origin, processor, edge) under ``tests.support.process``; every
child is found by PID in ``stack.json`` and none outlives the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from segmenter.schema import Keys
from tests.support.process import Process
from tests.support.servers import CLI
from tests.support.timing import scaled, wait_until

pytestmark = pytest.mark.slow
START_S = 90.0
STOP_S = 60.0
RECOVERY_S = 10.0  # the bound: a killed part is back within 10 s


def _info(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _rail_ok(info: dict) -> bool:
    return _ok(info["edge_url"] + "/p13n/v1/rail/home?k=5")


def _redis_ok(info: dict) -> bool:
    client = redis.Redis.from_url(info["redis_url"], socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


# What "serving" means per part, from outside.
SERVING: dict[str, Callable[[dict], bool]] = {
    "origin": lambda i: _ok(i["origin_url"] + "/healthz"),
    "edge": _rail_ok,
    "processor": lambda i: _ok(i["processor_metrics_url"] + "/metrics"),
    "redis": _redis_ok,
}


@contextlib.contextmanager
def _no_orphans(stack_json: Path) -> Iterator[None]:
    """Whatever the outcome, every pid the stack ever wrote is SIGKILLed at the end."""
    seen: set[int] = set()
    try:
        yield
    finally:
        info = _info(stack_json) or {}
        seen.update(info.get("pids", {}).values())
        for pid in seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _kill_and_time(up: Process, path: Path, part: str) -> float:
    """SIGKILL ``part``; the others serve meanwhile; seconds until it serves again."""
    before = _info(path)
    assert before is not None
    old_pid = before["pids"][part]
    os.kill(old_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    # While it is down (the first restart waits 0.5 s), the others answer.
    for other, serving in SERVING.items():
        if other != part:
            assert serving(before), f"{other} stopped serving when {part} was killed"

    def back() -> bool:
        assert up.poll() is None, f"p13n up exited when {part} was killed:\n{up.tail()}"
        now = _info(path)
        return bool(now and now["pids"][part] != old_pid and SERVING[part](now))

    wait_until(back, RECOVERY_S, f"{part} back after SIGKILL", interval_s=0.05)
    return time.monotonic() - killed_at


def test_a_killed_part_is_back_within_10s_while_the_others_serve(tmp_path) -> None:
    path = tmp_path / "stack.json"
    env = {**os.environ, "P13N_LEASE_TTL_MS": "2000"}  # a dead processor's lease goes fast
    with (
        Process([*CLI, "up", "--dir", str(tmp_path)], name="up", env=env) as up,
        _no_orphans(path),
    ):
        first = wait_until(lambda: _info(path), START_S, "the stack never started")
        assert isinstance(first, dict)
        wait_until(lambda: all(s(first) for s in SERVING.values()), 30, "stack not serving")
        keys_before = (tmp_path / "keys.json").read_text()
        _mark(first)  # a key written before Redis is killed must survive it (AOF)
        parts = ("processor", "origin", "edge", "redis")
        times = {part: _kill_and_time(up, path, part) for part in parts}
        print(f"restart times (s): {times}")  # the figure the issue asks about, with -s
        assert all(t <= scaled(RECOVERY_S) for t in times.values()), times

        after = _info(path)
        assert after is not None
        # Same ports, tokens and keys: bookmarks and console sessions survive a restart.
        for url in ("origin_url", "edge_url", "edge_admin_url", "redis_url"):
            assert after[url] == first[url]
        assert after["tokens"] == first["tokens"]
        assert (tmp_path / "keys.json").read_text() == keys_before
        assert {n: c["restarts"] for n, c in after["children"].items()} == {
            "origin": 1, "processor": 1, "edge": 1, "redis": 1,
        }  # fmt: skip
        assert _marked(after)  # same port, same data directory
        # The others reconnected: the origin is ready again (it reads Redis).
        wait_until(lambda: _ok(after["origin_url"] + "/readyz"), 30, "origin never ready again")
        assert "killed by SIGKILL" in after["children"]["processor"]["last_exit"]
        # Said in p13n up's output and in the child's own log.
        assert "processor killed by SIGKILL" in up.output()
        assert "[p13n up] processor restarted" in (tmp_path / "processor.log").read_text()
        _restarted_processor_applies_events(after)
        _status_shows_the_restarts(tmp_path)

        up.send_signal(signal.SIGINT)
        assert up.wait(STOP_S) == 0, up.output()
        assert _info(path)["state"] == "stopped"  # type: ignore[index]
        for pid in after["pids"].values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                assert Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z"


def _mark(info: dict) -> None:
    client = redis.Redis.from_url(info["redis_url"])
    try:
        client.set("p13n-test:supervised", "kept")
    finally:
        client.close()


def _marked(info: dict) -> bool:
    client = redis.Redis.from_url(info["redis_url"])
    try:
        return client.get("p13n-test:supervised") == b"kept"
    finally:
        client.close()


def _restarted_processor_applies_events(info: dict) -> None:
    rail = httpx.get(info["edge_url"] + "/p13n/v1/rail/home?k=5", timeout=10)
    sid = rail.cookies.get("p13n_sid")
    assert sid
    event = {"v": 1, "event_id": "sup-1", "type": "view", "user": sid, "item": "SKU-0001",
             "category": "dairy", "ts": int(time.time() * 1000), "session": "s"}  # fmt: skip
    assert httpx.post(info["edge_url"] + "/v1/events", json=event, timeout=10).status_code == 202
    r = redis.Redis.from_url(info["redis_url"])
    try:
        wait_until(lambda: r.lrange(Keys().recent(sid), 0, -1), 30, "restarted processor idle")
    finally:
        r.close()


def _status_shows_the_restarts(stack_dir: Path) -> None:
    def up_again() -> subprocess.CompletedProcess[str]:
        out = subprocess.run([*CLI, "status", "--stack", str(stack_dir)], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
        return out if out.returncode == 0 else None  # type: ignore[return-value]

    done = wait_until(up_again, 30, "status never all up after the restarts", interval_s=0.5)
    assert isinstance(done, subprocess.CompletedProcess)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("restarts"))
    assert "processor 1 (last killed by SIGKILL" in line
    assert "origin 1" in line and "edge 1" in line and "redis 1" in line
