"""A ``p13n up`` stack's life beyond one run: SIGHUP reloads (the parts restarted one by one,
their logs opened again: logrotate's rename-then-HUP) instead of stopping the stack; a clean
stop keeps ``stack.json`` marked stopped, ``p13n status`` says so, and the next ``up`` in the
directory takes the same ports, tokens, keys and data.

A real stack (Redis, uvicorn origin, processor, edge) under ``tests.support.process``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.process import Process
from tests.support.servers import CLI
from tests.support.timing import wait_until

pytestmark = pytest.mark.slow
START_S = 90.0
RELOAD_S = 120.0
STOP_S = 60.0
PARTS = ("origin", "processor", "edge")


def _info(path: Path) -> dict | None:
    try:
        doc: dict = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return doc


def _running(path: Path) -> dict | None:
    info = _info(path)
    return info if info and info.get("state") == "running" and info.get("pids") else None


def _stdout_of(pid: int) -> str:
    """The file a process writes its standard output to (the kernel's view)."""
    return os.readlink(f"/proc/{pid}/fd/1")


def _up(stack_dir: Path) -> Process:
    return Process([*CLI, "up", "--dir", str(stack_dir)], name="up")


def _status(stack_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "status", "--stack", str(stack_dir)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def test_sighup_reloads_and_a_clean_stop_keeps_the_stack_for_the_next_up(tmp_path) -> None:
    path = tmp_path / "stack.json"
    with _up(tmp_path) as up:
        first = wait_until(lambda: _running(path), START_S, "the stack never started")
        assert isinstance(first, dict)
        _sighup_reloads(up, tmp_path, first)
        client = redis.Redis.from_url(first["redis_url"])
        try:
            client.set("p13n-test:lifecycle", "kept")
        finally:
            client.close()
        up.send_signal(signal.SIGINT)
        assert up.wait(STOP_S) == 0, up.output()

    stopped = _info(path)
    assert stopped is not None, "a clean stop removed stack.json"
    assert stopped["state"] == "stopped" and stopped["pids"] == {}
    assert stopped["tokens"] == first["tokens"]
    done = _status(tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.startswith(f"stack {tmp_path} is stopped (since "), done.stdout
    assert done.stderr == ""
    sim = subprocess.run([*CLI, "simulate", "--stack", str(tmp_path), "--duration", "1"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert sim.returncode == 1
    assert sim.stderr.startswith(f"p13n simulate: the stack at {tmp_path} is stopped"), sim.stderr

    with _up(tmp_path) as up:
        again = wait_until(lambda: _running(path), START_S, "the stack never started again")
        assert isinstance(again, dict)
        for url in ("redis_url", "origin_url", "edge_url", "edge_admin_url",
                    "processor_metrics_url"):  # fmt: skip
            assert again[url] == first[url], url  # the ports were free: taken again
        assert again["tokens"] == first["tokens"]
        client = redis.Redis.from_url(again["redis_url"])
        try:
            assert client.get("p13n-test:lifecycle") == b"kept"
        finally:
            client.close()
        up.send_signal(signal.SIGTERM)
        assert up.wait(STOP_S) == 0, up.output()


def _sighup_reloads(up: Process, stack_dir: Path, first: dict) -> None:
    """logrotate: rename the logs, SIGHUP; the parts write to new files, the stack serves."""
    for name in PARTS:
        assert _stdout_of(first["pids"][name]) == str(stack_dir / f"{name}.log")
        (stack_dir / f"{name}.log").rename(stack_dir / f"{name}.log.1")
    up.send_signal(signal.SIGHUP)

    def reloaded() -> dict | None:
        assert up.poll() is None, f"p13n up exited on SIGHUP:\n{up.tail()}"
        info = _running(stack_dir / "stack.json")
        return info if info and info["reloads"] == 1 else None

    after = wait_until(reloaded, RELOAD_S, "no reload after SIGHUP", interval_s=0.2)
    assert isinstance(after, dict)
    assert after["pids"]["redis"] == first["pids"]["redis"]  # Redis is not restarted
    for name in PARTS:
        assert after["pids"][name] != first["pids"][name], name
        assert _stdout_of(after["pids"][name]) == str(stack_dir / f"{name}.log"), name
        assert after["children"][name]["restarts"] == 0  # a reload is no failure
    assert after["edge_url"] == first["edge_url"]
    rail = httpx.get(after["edge_url"] + "/p13n/v1/rail/home?k=5", timeout=10)
    assert rail.status_code == 200
    assert "restarted for a reload" in (stack_dir / "edge.log").read_text()


def test_the_ports_of_a_stack_are_distinct_even_when_a_free_port_repeats(monkeypatch) -> None:
    """free_port releases what it found: the origin's port came back as the processor's
    metrics port once (the processor then never started: "Address already in use")."""
    from ops.local import redis as local  # noqa: PLC0415 - the module whose free_port is replaced

    handed_out = iter([40001, 40001, 40002, 40001, 40003, 40004])
    monkeypatch.setattr(local, "free_port", lambda: next(handed_out))
    taken: set[int] = {40002}  # Redis's
    assert [local.pick_port("", taken) for _ in range(3)] == [40001, 40003, 40004]
