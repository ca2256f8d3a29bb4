"""Stopping child processes by PID: whole process groups, all within one deadline.

Every child of the local harness runs in a session (process group) of its own, so a signal
to the group also reaches whatever the child started (uvicorn's workers, Redis's rewrite
child). ``stop_all`` signals every group at once and waits for all of them against one
deadline, then SIGKILLs what is left: stopping takes one grace period however many children
there are. (Waiting a full grace per child in turn adds up on a loaded machine: a ``p13n
demo`` once needed more than a minute after Ctrl-C, and was killed with its Redis running.)

A parent that is killed outright (SIGKILL, or ``timeout`` ending a test run) stops nothing,
and its children, each in a session of its own, no signal to the parent's group reaches:
``die_with_parent`` asks Linux to send them SIGTERM when it dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable

__all__ = ["KILL_WAIT_S", "die_with_parent", "signal_group", "stop_all"]

# After SIGKILL only the kernel is left to act; a process not reaped by then is stuck in
# uninterruptible I/O, and waiting longer would only hold up the others.
KILL_WAIT_S = 5.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up once in the parent (the child between fork and exec should
    do as little as it can); None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when this process
    dies, however it dies. None (nothing to pass) off Linux, and off the main thread: the
    kernel ties the signal to the thread that forked, so a child started from a worker
    thread would die when that thread ends, not when the process does. The hook imports
    nothing, logs nothing and takes no lock another thread could hold across the fork (the
    usual danger of ``preexec_fn`` beside threads): one libc call and one system call."""
    if _PRCTL is None or threading.current_thread() is not threading.main_thread():
        return None
    prctl, parent = _PRCTL, os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request: never start
            os._exit(1)

    return arm


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
