"""A test run that is killed leaves no server behind.

``timeout`` ends a hung run with SIGTERM (then SIGKILL with ``-k``); fixtures' finalizers
only run if pytest turns SIGTERM into a normal exit, and nothing runs at all after SIGKILL,
so the servers also die with the process that started them (PR_SET_PDEATHSIG). Before
either, every killed run left its redis-servers running for hours, parented to init.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tests.support.process import Process
from tests.support.timing import wait_until

ROOT = Path(__file__).resolve().parents[3]

# Uses the project's session fixture, as any test does; says where its server runs, then
# waits to be killed. A fixture's finalizer leaves a mark, so the test can tell a torn-down
# session from a server that merely died with its parent.
SLEEPER = """
import os, time
import pytest

@pytest.fixture
def marked():
    yield
    open({torn!r}, "w").close()

def test_sleeps(redis_server, marked):
    tmp = {pid!r} + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(redis_server.process.pid))
    os.replace(tmp, {pid!r})
    time.sleep(600)
"""


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie not yet reaped by init counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_killed_run_leaves_no_redis_server(tmp_path: Path, sig: signal.Signals) -> None:
    pid_file, torn = tmp_path / "redis.pid", tmp_path / "torn-down"
    test_file = tmp_path / "test_sleeper.py"
    test_file.write_text(SLEEPER.format(pid=str(pid_file), torn=str(torn)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The project's conftest as a plugin: the file lives outside tests/, where pytest would
    # not find it, and no ini file applies (tmp_path is the rootdir).
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-p", "tests.conftest", str(test_file)]  # fmt: skip
    redis_pid = 0
    try:
        with Process(args, name="pytest", env=env, cwd=tmp_path, ready=pid_file.exists) as run:
            redis_pid = int(pid_file.read_text())
            assert not _gone(redis_pid)
            run.send_signal(sig)
            run.wait(60)
            wait_until(lambda: _gone(redis_pid), 15, f"redis-server {redis_pid} stopped")
            if sig == signal.SIGTERM:
                assert torn.exists(), f"finalizers did not run:\n{run.tail()}"
    finally:
        if redis_pid and not _gone(redis_pid):  # the orphan this test made: stop it by PID
            os.killpg(redis_pid, signal.SIGKILL)
