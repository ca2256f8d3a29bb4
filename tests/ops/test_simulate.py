"""``p13n simulate`` against a real stack that already ran: each run reports its own figures,
and visits still in flight at the end are drained or cancelled before the client closes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import httpx
import pytest

from ops import simulate
from ops.cli import main
from ops.simulate import Simulator
from ops.stack import StackInfo
from tests.support.ops import running_stack
from tests.support.process import Process
from tests.support.servers import CLI
from tests.support.timing import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """A stack of this module's own: the simulations change its catalog and experiment."""
    with running_stack(tmp_path_factory.mktemp("simstack")) as info:
        yield info


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


def test_ctrl_c_during_simulate_still_prints_the_summary(own_stack) -> None:
    argv = [*CLI, "simulate", "--stack", own_stack.directory, "--duration", "120", "--rate",
            "20", "--no-progress"]  # fmt: skip
    before = _edge_answers(own_stack)  # the module's earlier runs answered too
    with Process(argv, name="simulate") as sim:
        began = lambda: _edge_answers(own_stack) > before + 20  # noqa: E731
        wait_until(began, 60, "the simulation never began", interval_s=0.2)
        assert sim.poll() is None
        sim.send_signal(signal.SIGINT)
        assert sim.wait(60) == 1
        out = sim.output()
    last = [ln for ln in out.splitlines() if ln.strip()][-1]
    assert last.startswith("demo FAILED the run ended early (interrupted)"), out[-3000:]
    assert "== edge answers" in out and "== load generator" in out
    assert "Traceback" not in out and "never retrieved" not in out


def _edge_answers(info: StackInfo) -> float:
    try:
        text = httpx.get(info.edge_admin_url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
               if ln.startswith("p13n_edge_answers_total{"))  # fmt: skip
