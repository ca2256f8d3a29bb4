"""Stopping child processes by PID: whole process groups, all within one deadline.

Every child of the local harness runs in a session (process group) of its own, so a signal
to the group also reaches whatever the child started (uvicorn's workers, Redis's rewrite
child). ``stop_all`` signals every group at once and waits for all of them against one
deadline, then SIGKILLs what is left: stopping takes one grace period however many children
there are. (Waiting a full grace per child in turn adds up on a loaded machine: a ``p13n
demo`` once needed more than a minute after Ctrl-C, and was killed with its Redis running.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable

__all__ = ["KILL_WAIT_S", "signal_group", "stop_all"]

# After SIGKILL only the kernel is left to act; a process not reaped by then is stuck in
# uninterruptible I/O, and waiting longer would only hold up the others.
KILL_WAIT_S = 5.0


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """``sig`` to the process group ``proc`` leads (it was started with a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_all(
    procs: Iterable[subprocess.Popen[bytes]],
    grace_s: float,
    sig: signal.Signals = signal.SIGTERM,
) -> list[subprocess.Popen[bytes]]:
    """``sig`` to every group, one ``grace_s`` for all, then SIGKILL and reap; the processes
    still not reaped after that (none, unless the kernel is stuck)."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            signal_group(proc, sig)
    _wait_all(procs, grace_s)
    for proc in procs:
        # Also when the leader is gone: what it started may still be in its group.
        signal_group(proc, signal.SIGKILL)
    return _wait_all(procs, KILL_WAIT_S)


def _wait_all(
    procs: list[subprocess.Popen[bytes]], timeout_s: float
) -> list[subprocess.Popen[bytes]]:
    """Reap each of ``procs`` before one shared deadline; those still running."""
    deadline = time.monotonic() + timeout_s
    running = []
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            running.append(proc)
    return running
