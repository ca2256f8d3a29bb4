"""``p13n up`` and ``p13n simulate`` as a person runs them: real processes, Ctrl-C, no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from segmenter.schema import Keys

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "ops.cli"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state in /proc says it is gone.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def _wait_for(path: Path, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.2)
    raise AssertionError(f"{path} never appeared")


def test_up_serves_events_flow_simulate_runs_and_ctrl_c_leaves_nothing(tmp_path) -> None:
    up = subprocess.Popen(
        [*CLI, "up", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        info = _wait_for(tmp_path / "stack.json", 90)
        pids = dict(info["pids"])
        assert set(pids) >= {"origin", "processor", "edge", "redis"}
        rail = httpx.get(info["edge_url"] + "/p13n/v1/rail/home?k=5", timeout=10)
        assert rail.status_code == 200 and "cache-status" in rail.headers
        sid = rail.cookies.get("p13n_sid")
        assert sid
        event = {
            "v": 1,
            "event_id": "up-test-1",
            "type": "view",
            "user": sid,
            "item": "SKU-0001",
            "category": "dairy",
            "ts": int(time.time() * 1000),
            "session": "s",
        }
        assert (
            httpx.post(info["edge_url"] + "/v1/events", json=event, timeout=10).status_code == 202
        )
        r = redis.Redis.from_url(info["redis_url"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not r.lrange(Keys().recent(sid), 0, -1):
            time.sleep(0.1)
        assert r.lrange(Keys().recent(sid), 0, -1) == [b"SKU-0001"]  # features updated
        r.close()
        sim = subprocess.run(
            [
                *CLI,
                "simulate",
                "--stack",
                str(tmp_path),
                "--duration",
                "8",
                "--rate",
                "30",
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        last = [ln for ln in sim.stdout.splitlines() if ln.strip()][-1]
        assert last.startswith("demo ok "), sim.stdout + sim.stderr
        assert sim.returncode == 0
    finally:
        up.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out
    assert b"stopped" in out
    assert not (tmp_path / "stack.json").exists()
    assert [name for name, pid in pids.items() if _alive(pid)] == []


def test_simulate_without_a_running_system_is_a_clear_error(tmp_path) -> None:
    sim = subprocess.run(
        [*CLI, "simulate", "--stack", str(tmp_path), "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sim.returncode == 1
    assert "no stack found" in sim.stderr and "p13n up" in sim.stderr
    assert "Traceback" not in sim.stderr


def _stack_pids_from_output(proc: subprocess.Popen[bytes], timeout_s: float) -> dict:
    """Read the command's output until it names its ``stack.json``; that file's pids."""
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace")
        if line.startswith("state "):
            path = Path(line.split()[1])
            return dict(_wait_for(path, max(1.0, deadline - time.monotonic()))["pids"])
        assert time.monotonic() < deadline, "the stack never started"
    raise AssertionError("the command ended before its stack started")


def test_ctrl_c_during_demo_stops_every_child(tmp_path) -> None:
    demo = subprocess.Popen(
        [*CLI, "demo", "--duration", "120", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        pids = _stack_pids_from_output(demo, 90)
        assert set(pids) >= {"origin", "processor", "edge", "redis"}
        time.sleep(1)  # into the simulation
        demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode != 0
    assert b"demo FAILED interrupted" in out
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert list(tmp_path.iterdir()) == []  # the throwaway directory went, after the children


def test_sighup_stops_up_like_ctrl_c(tmp_path) -> None:
    up = subprocess.Popen(
        [*CLI, "up", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        pids = dict(_wait_for(tmp_path / "stack.json", 90)["pids"])
        up.send_signal(signal.SIGHUP)  # the terminal closed
        out, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 0, out
    assert b"stopped" in out
    assert not (tmp_path / "stack.json").exists()
    assert [name for name, pid in pids.items() if _alive(pid)] == []
