"""``p13n up``'s supervisor: a child that exits is started again, with backoff, alone.

The stack's children (origin, processor, edge) are independent processes: when one exits
(a crash, an OOM kill, an operator's ``kill -TERM <pid>`` from the runbook) the others keep
serving, and the supervisor starts the exited one again on the same ports with the same
environment, after a delay that doubles while it keeps failing fast:

    exit -> wait backoff (0.5 s, 1 s, 2 s, 4 s, then 8 s) -> start -> ran STABLE_S -> reset

Only a signal to ``p13n up`` itself (Ctrl-C, SIGTERM) stops the stack. ``Backoff`` is the
policy, pure and clocked by its caller; ``Supervisor.tick`` is the one I/O step the run loop
calls: it reaps, schedules, restarts and says so (on ``p13n up``'s stderr, in the child's
own log, and in ``stack.json``, which ``p13n status`` reads).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Backoff", "ChildState", "Proc", "Supervisor"]

FIRST_DELAY_S = 0.5  # a killed part is back well inside the 10 s the runbook promises
MAX_DELAY_S = 8.0
STABLE_S = 30.0  # a start that ran this long was a success: the next failure starts over


@dataclass
class Backoff:
    """Delay before the next start, from how the previous ones went (pure; times in s)."""

    first_s: float = FIRST_DELAY_S
    max_s: float = MAX_DELAY_S
    stable_s: float = STABLE_S
    failures: int = 0  # consecutive starts that exited before ``stable_s``

    def after_exit(self, ran_s: float) -> float:
        """The delay before starting again, for a child that ran ``ran_s`` seconds.

        >>> b = Backoff(); [b.after_exit(1.0) for _ in range(6)]
        [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
        """
        self.failures = 1 if ran_s >= self.stable_s else self.failures + 1
        return float(min(self.max_s, self.first_s * 2 ** (self.failures - 1)))


@dataclass
class ChildState:
    """What ``stack.json`` and ``p13n status`` show about one supervised child."""

    pid: int
    restarts: int = 0
    last_exit: str = ""  # "exited with code -9 at 2026-12-06T16:55:02Z"
    restarting_in_s: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    backoff: Backoff = field(default_factory=Backoff)
    due_at: float | None = None  # monotonic time of the scheduled start


class Proc(Protocol):
    """What the supervisor needs of a child process (``subprocess.Popen`` has it)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...


def _utc(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Supervisor:
    """Restarts the children of one stack; ``tick`` is called by the run loop."""

    # Starts ``name`` again (what its old process group left is killed first) and returns
    # the new process: the stack's own ``respawn``.
    respawn: Callable[[str], Proc]
    process: Callable[[str], Proc]  # the child's current process
    names: tuple[str, ...]
    say: Callable[[str, str], None]  # (child name, message)
    changed: Callable[[], None]  # the states changed: write stack.json
    clock: Callable[[], float] = time.monotonic
    # Stops ``name`` gracefully and starts it again (a reload); ``respawn`` if not given.
    replace_with: Callable[[str], Proc] | None = None
    states: dict[str, ChildState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        now = self.clock()
        for name in self.names:
            self.states[name] = ChildState(pid=self.process(name).pid, started_at=now)

    def tick(self) -> None:
        """Reap exited children, schedule their start, start those whose delay passed."""
        now, dirty = self.clock(), False
        for name, st in self.states.items():
            proc = self.process(name)
            if st.due_at is None:
                code = proc.poll()
                if code is None:
                    continue
                delay = st.backoff.after_exit(now - st.started_at)
                st.due_at, st.restarting_in_s = now + delay, delay
                st.last_exit = f"{_exit_text(code)} at {_utc(time.time())}"
                self.say(name, f"{name} {st.last_exit}; restarting in {delay:.1f} s")
                dirty = True
            elif now >= st.due_at:
                st.pid = self.respawn(name).pid
                st.restarts += 1
                st.due_at, st.restarting_in_s, st.started_at = None, None, now
                self.say(name, f"{name} restarted (pid {st.pid}, restart {st.restarts})")
                dirty = True
        if dirty:
            self.changed()

    def replace(self, name: str) -> None:
        """Start ``name`` again on purpose (a reload): not a failure, so no restart counted
        and no backoff; a restart it had pending is done now."""
        st = self.states[name]
        st.pid = (self.replace_with or self.respawn)(name).pid
        st.due_at, st.restarting_in_s, st.started_at = None, None, self.clock()
        self.say(name, f"{name} restarted for a reload (pid {st.pid})")
        self.changed()

    def doc(self) -> dict[str, dict[str, object]]:
        """The states as ``stack.json``'s ``children`` holds them."""
        return {
            name: {
                "pid": st.pid,
                "restarts": st.restarts,
                "last_exit": st.last_exit,
                "restarting_in_s": st.restarting_in_s,
            }
            for name, st in self.states.items()
        }
