"""``p13n up`` and ``p13n simulate`` as a person runs them: real processes, Ctrl-C, no orphans.

The commands run under ``tests.support.process.Process`` (output in a log, never a pipe left
open); the stack's children are found by PID in its ``stack.json`` and, whatever a test's
outcome, none outlives it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from segmenter.schema import Keys
from tests.support.process import Process
from tests.support.servers import CLI
from tests.support.timing import wait_until

pytestmark = pytest.mark.slow
START_S = 90.0  # the whole stack, from a cold interpreter
STOP_S = 60.0  # Ctrl-C to exit, every child stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state in /proc says it is gone.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def _stack_json(path: Path) -> dict | None:
    """The stack's ``stack.json`` once it is there and whole."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _wait_for_stack(command: Process, path: Path) -> dict:
    def written() -> dict | None:
        assert command.poll() is None, f"{command.name} exited:\n{command.tail()}"
        return _stack_json(path)

    return wait_until(written, START_S, f"{path} never appeared")  # type: ignore[return-value]


def _stack_path_from_output(command: Process) -> Path:
    """The ``stack.json`` the command names on its ``state`` line."""

    def named() -> Path | None:
        assert command.poll() is None, f"{command.name} exited:\n{command.tail()}"
        for line in command.output().splitlines():
            if line.startswith("state "):
                return Path(line.split()[1])
        return None

    return wait_until(named, START_S, "the stack never started")  # type: ignore[return-value]


@contextlib.contextmanager
def _no_orphans(pids: dict[str, int]) -> Iterator[None]:
    """Whatever the test's outcome, no child of the stack outlives it (SIGKILL by PID)."""
    try:
        yield
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _edge_answers(info: dict) -> float:
    """Rails the stack's edge has answered (its admin /metrics), 0 if it does not answer."""
    try:
        text = httpx.get(info["edge_admin_url"] + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("p13n_edge_answers_total{")
    )


def test_up_serves_events_flow_simulate_runs_and_ctrl_c_leaves_nothing(tmp_path) -> None:
    with Process([*CLI, "up", "--dir", str(tmp_path)], name="up") as up:
        info = _wait_for_stack(up, tmp_path / "stack.json")
        pids = dict(info["pids"])
        with _no_orphans(pids):
            try:
                _serve_and_simulate(info, tmp_path)
            finally:
                up.send_signal(signal.SIGINT)  # Ctrl-C
            _assert_stopped_cleanly(up, tmp_path, pids)


def _assert_stopped_cleanly(up: Process, stack_dir: Path, pids: dict[str, int]) -> None:
    """``p13n up``, signalled, exits 0 saying so, its state file and every child gone."""
    code = up.wait(STOP_S)
    out = up.output()
    assert code == 0, out
    assert "stopped" in out
    assert json.loads((stack_dir / "stack.json").read_text())["state"] == "stopped"
    assert [name for name, pid in pids.items() if _alive(pid)] == []


def _serve_and_simulate(info: dict, stack_dir: Path) -> None:
    assert set(info["pids"]) >= {"origin", "processor", "edge", "redis"}
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
    assert httpx.post(info["edge_url"] + "/v1/events", json=event, timeout=10).status_code == 202
    r = redis.Redis.from_url(info["redis_url"])
    try:
        wait_until(lambda: r.lrange(Keys().recent(sid), 0, -1), 20, "features never updated")
        assert r.lrange(Keys().recent(sid), 0, -1) == [b"SKU-0001"]  # features updated
    finally:
        r.close()
    sim = subprocess.run(
        [*CLI, "simulate", "--stack", str(stack_dir), "--duration", "8", "--rate", "30",
         "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    last = [ln for ln in sim.stdout.splitlines() if ln.strip()][-1]
    assert last.startswith("demo ok "), sim.stdout + sim.stderr
    assert sim.returncode == 0


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


def _demo(tmp_path: Path, **env: str) -> Process:
    """``p13n demo`` for longer than any test, its throwaway directory under ``tmp_path``."""
    return Process(
        [*CLI, "demo", "--duration", "120", "--no-progress"],
        name="demo",
        env={**os.environ, "TMPDIR": str(tmp_path), **env},
    )


def test_ctrl_c_during_demo_stops_every_child(tmp_path) -> None:
    with _demo(tmp_path) as demo:
        info = _wait_for_stack(demo, _stack_path_from_output(demo))
        pids = dict(info["pids"])
        with _no_orphans(pids):
            assert set(pids) >= {"origin", "processor", "edge", "redis"}
            wait_until(lambda: _edge_answers(info) > 0, 30, "the simulation never began")
            demo.send_signal(signal.SIGINT)
            code = demo.wait(STOP_S)
            assert code != 0
            assert "demo FAILED interrupted" in demo.output()
            assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert list(tmp_path.iterdir()) == []  # the throwaway directory went, after the children


def test_ctrl_c_stops_children_too_busy_for_sigterm_within_one_grace(tmp_path) -> None:
    """A loaded machine: children that cannot act on SIGTERM in time (here stopped with
    SIGSTOP, so SIGTERM waits). Ctrl-C must still end every one of them, SIGKILL after one
    grace period shared by all, and Redis last: not one grace per child in turn, and never a
    redis-server left running after the command has gone."""
    grace_s = 1.0
    with _demo(tmp_path, P13N_STOP_GRACE_S=str(grace_s)) as demo:
        pids = dict(_wait_for_stack(demo, _stack_path_from_output(demo))["pids"])
        with _no_orphans(pids):
            for pid in pids.values():
                os.kill(pid, signal.SIGSTOP)
            demo.send_signal(signal.SIGINT)
            # Two graces (children, then Redis) and the kills; far below one grace per child.
            code = demo.wait(10 * grace_s)
            assert code != 0
            assert "demo FAILED interrupted" in demo.output()
            assert [name for name, pid in pids.items() if _alive(pid)] == []
