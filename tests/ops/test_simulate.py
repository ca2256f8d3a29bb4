"""``p13n simulate`` against a real stack that already ran: each run reports its own figures,
and visits still in flight at the end are drained or cancelled before the client closes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ops import simulate
from ops.cli import main
from ops.simulate import Simulator
from ops.stack import Stack, StackInfo
from tests.support.timing import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """A stack of this module's own: the simulations change its catalog and experiment."""
    s = Stack(directory=tmp_path_factory.mktemp("simstack"))
    info = s.start()
    try:
        status = ["status", "--stack", info.directory, "--json"]
        wait_until(lambda: main(status) == 0, 20, "the stack never became healthy", interval_s=0.2)
        yield info
    finally:
        s.stop()


def _simulate(capsys, info: StackInfo) -> list[str]:
    code = main(["simulate", "--stack", info.directory, "--duration", "8", "--rate", "25",
                 "--no-progress", "--seed", "11"])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert code == 0, "\n".join(out)
    return out


def test_a_second_run_on_the_same_stack_reports_only_its_own_figures(capsys, own_stack) -> None:
    for _ in range(2):  # the second run used to count the first one's dead letters too
        out = _simulate(capsys, own_stack)
        last = out[-1]
        assert last.startswith("demo ok "), "\n".join(out)
        assert " bottleneck=" in last and " achieved_per_s=" in last
        assert any(line.startswith("== load generator") for line in out)
        assert any("visits cancelled at the end:" in line for line in out)


def test_visits_in_flight_at_the_end_are_cancelled_and_awaited(monkeypatch) -> None:
    monkeypatch.setattr(simulate, "DRAIN_S", 0.05)
    sim = Simulator(StackInfo("", "", "", "", "", {}))

    async def go() -> list[asyncio.Task[None]]:
        async def quick() -> None:
            return None

        async def stuck() -> None:
            await asyncio.Event().wait()

        tasks = {asyncio.create_task(quick()), asyncio.create_task(stuck())}
        kept = list(tasks)
        await sim._drain(tasks)
        return kept

    tasks = asyncio.run(go())
    assert all(t.done() for t in tasks) and sum(t.cancelled() for t in tasks) == 1
    assert sim.run.cancelled == 1
