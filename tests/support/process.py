"""The one way tests run a child process: start, wait until ready, stop by PID, close all.

``Process`` starts a command in a process group of its own (``start_new_session``), its output
in a log file (never a pipe nobody drains), polls a readiness condition with a deadline that
scales with the machine (``tests.support.timing``) while checking that the child is still
alive, and stops the whole group by PID: SIGTERM, a grace period, then SIGKILL. ``close``
also closes every file and pipe it opened and removes its own temporary log directory, so a
test that fails half-way leaks nothing. Use it as a context manager or from a fixture::

    with Process([sys.executable, "-m", "ops.cli", "origin", ...], name="origin",
                 ready=http_ok("http://127.0.0.1:8000/healthz")) as origin:
        ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from ops.local.process import die_with_parent
from tests.support.timing import POLL_S, scaled

__all__ = ["Process", "http_ok"]

START_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0


def http_ok(url: str, accept: Callable[[httpx.Response], bool] | None = None) -> Callable[[], bool]:
    """A readiness condition: ``url`` answers 200 (or whatever ``accept`` says)."""

    def ready() -> bool:
        try:
            response = httpx.get(url, timeout=1.0)
        except httpx.HTTPError:
            return False
        return accept(response) if accept else response.status_code == 200

    return ready


class Process:
    """A child process of a test (see the module docstring)."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        log_dir: str | Path | None = None,
        ready: Callable[[], object] | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        pipes: bool = False,
    ) -> None:
        self.args = list(args)
        self.name = name
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready = ready
        self.start_timeout_s = start_timeout_s
        self.pipes = pipes  # stdin and stdout as text pipes (a line protocol); output: log
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None  # made by start, if needed
        self.proc: subprocess.Popen[Any] | None = None

    @property
    def log_path(self) -> Path:
        """Where the child's output goes: ``<log_dir>/<name>.log``, else a directory of
        this runner's own, removed by ``close``."""
        if self._log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"p13n-test-{self.name}-")
            self._log_dir = Path(self._tmp.name)
        return self._log_dir / f"{self.name}.log"

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> Process:
        """Start the command and wait until ``ready`` holds; stops it and raises if not."""
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.PIPE if self.pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.pipes else log,
                stderr=log,
                text=self.pipes,
                start_new_session=True,
                # A test run killed outright (``timeout``'s SIGKILL) runs no finalizer.
                preexec_fn=die_with_parent(),
            )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_ready(self) -> None:
        if self.ready is None:
            return
        deadline = time.monotonic() + scaled(self.start_timeout_s)
        while not self.ready():
            if self.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start ({self.poll()}):\n{self.tail()}")
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{self.name} not ready within {scaled(self.start_timeout_s):.0f} s:\n"
                    f"{self.tail()}"
                )
            time.sleep(POLL_S)

    def stop(self, sig: signal.Signals = signal.SIGTERM, grace_s: float = STOP_GRACE_S) -> None:
        """Send ``sig`` to the process group, SIGKILL it after the scaled grace, reap it."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(sig)
            try:
                proc.wait(scaled(grace_s))
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(scaled(STOP_GRACE_S))
        # Whatever the leader left in its group (a uvicorn worker, say) goes with it.
        self._signal_group(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash) and reap the leader."""
        self.stop(signal.SIGKILL)

    def close(self) -> None:
        """Stop, then close every pipe and remove the temporary log directory."""
        try:
            if self.proc is not None and self.pipes and self.proc.stdin is not None:
                with contextlib.suppress(OSError):  # a dead child's pipe may be broken
                    self.proc.stdin.close()
            self.stop()
        finally:
            if self.proc is not None:
                for stream in (self.proc.stdin, self.proc.stdout):
                    if stream is not None:
                        with contextlib.suppress(OSError):
                            stream.close()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp, self._log_dir = None, None

    def __enter__(self) -> Process:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- while it runs ---------------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def stdin(self) -> IO[str]:
        assert self.proc is not None and self.proc.stdin is not None, "started with pipes=True"
        return self.proc.stdin  # type: ignore[no-any-return]

    @property
    def stdout(self) -> IO[str]:
        assert self.proc is not None and self.proc.stdout is not None, "started with pipes=True"
        return self.proc.stdout  # type: ignore[no-any-return]

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout_s: float) -> int:
        """Wait (scaled deadline) for the child to exit by itself; its exit code."""
        assert self.proc is not None
        return self.proc.wait(scaled(timeout_s))

    def send_signal(self, sig: signal.Signals) -> None:
        """``sig`` to the leader only (SIGINT as a terminal's Ctrl-C would, SIGSTOP, ...)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def output(self) -> str:
        """Everything the child wrote to its log so far (stdout and stderr, unless piped)."""
        if self._log_dir is None:
            return ""
        path = self.log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def tail(self, chars: int = 3000) -> str:
        """The end of the output, for failure messages."""
        return self.output()[-chars:]

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
