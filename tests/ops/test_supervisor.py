"""The supervisor's policy and bookkeeping, on a fake clock and fake processes (no sleeps)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ops.supervisor import Backoff, Supervisor


def test_backoff_doubles_while_failing_fast_and_starts_over_after_a_stable_run() -> None:
    b = Backoff(first_s=0.5, max_s=8.0, stable_s=30.0)
    assert [b.after_exit(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert b.after_exit(30.0) == 0.5  # it ran long enough: a fresh failure
    assert b.after_exit(0.1) == 1.0


@dataclass
class FakeProc:
    pid: int
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


@dataclass
class World:
    now: float = 100.0
    next_pid: int = 1000
    procs: dict[str, FakeProc] = field(default_factory=dict)
    said: list[tuple[str, str]] = field(default_factory=list)
    writes: int = 0

    def respawn(self, name: str) -> FakeProc:
        self.next_pid += 1
        self.procs[name] = FakeProc(self.next_pid)
        return self.procs[name]

    def supervisor(self) -> Supervisor:
        for i, name in enumerate(("origin", "processor", "edge")):
            self.procs[name] = FakeProc(10 + i)
        return Supervisor(
            respawn=self.respawn,
            process=lambda name: self.procs[name],
            names=tuple(self.procs),
            say=lambda name, msg: self.said.append((name, msg)),
            changed=self.count_write,
            clock=lambda: self.now,
        )

    def count_write(self) -> None:
        self.writes += 1


def test_an_exited_child_alone_is_restarted_after_its_backoff_and_it_is_said() -> None:
    w = World()
    sup = w.supervisor()
    sup.tick()
    assert w.said == [] and w.writes == 0  # nothing exited: nothing to say or write

    w.procs["processor"].code = -9
    sup.tick()
    st = sup.states["processor"]
    assert st.restarting_in_s == 0.5 and "killed by SIGKILL" in st.last_exit
    assert w.said[-1][0] == "processor" and "restarting in 0.5 s" in w.said[-1][1]
    w.now += 0.4
    sup.tick()
    assert w.procs["processor"].pid == 11  # not yet: the delay has not passed
    w.now += 0.2
    sup.tick()
    assert w.procs["processor"].pid == 1001 and st.pid == 1001 and st.restarts == 1
    assert "restarted (pid 1001, restart 1)" in w.said[-1][1]
    # The others were never touched.
    assert (w.procs["origin"].pid, w.procs["edge"].pid) == (10, 12)
    assert sup.doc()["origin"] == {
        "pid": 10, "restarts": 0, "last_exit": "", "restarting_in_s": None,
    }  # fmt: skip
    assert sup.doc()["processor"]["restarts"] == 1
    assert w.writes == 2  # the exit and the restart each rewrote stack.json


def test_a_child_that_keeps_failing_waits_longer_each_time() -> None:
    w = World()
    sup = w.supervisor()
    delays = []
    for _ in range(4):
        w.procs["edge"].code = 1
        sup.tick()
        delays.append(sup.states["edge"].restarting_in_s)
        w.now += 10.0  # past any delay, but short of a stable run
        sup.tick()
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert sup.states["edge"].restarts == 4
    assert "exited with code 1" in sup.states["edge"].last_exit


def test_a_reload_replaces_a_child_without_counting_a_failure() -> None:
    w = World()
    sup = w.supervisor()
    w.procs["edge"].code = 1
    sup.tick()  # a restart pending ...
    sup.replace("edge")  # ... is done now, by the reload, and is not counted
    st = sup.states["edge"]
    assert st.pid == 1001 and st.restarts == 0 and st.restarting_in_s is None
    assert "restarted for a reload (pid 1001)" in w.said[-1][1]
    w.now += 10.0
    sup.tick()
    assert w.procs["edge"].pid == 1001  # the pending restart is not made a second time
