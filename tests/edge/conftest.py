"""Fixtures of the edge tests: the stand-in origin and the Pyodide Worker.

The stand-in origin is a real uvicorn process on 127.0.0.1; the Worker runs in real Pyodide
under Node, one process per test module because Pyodide takes seconds to start. Both are
``tests.support`` processes, stopped by PID at teardown. Neither skips: without ``make setup``
(npm packages, the SDK wheel) the tests fail and say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.worker import JS_DIR, ROOT, StandinOrigin, WorkerHarness, shipped_files

WHEEL_DIR = ROOT / ".venv" / "wheels"


@pytest.fixture(scope="session")
def standin_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinOrigin]:
    """The stand-in origin in a uvicorn process of its own, on a free loopback port."""
    with StandinOrigin(log_dir=tmp_path_factory.mktemp("standin")) as origin:
        yield origin


@pytest.fixture
def origin(standin_origin: StandinOrigin) -> StandinOrigin:
    """The stand-in origin, reset for this test."""
    standin_origin.control("reset", {})
    return standin_origin


def _sdk_wheel() -> Path:
    wheels = sorted(WHEEL_DIR.glob("workers_runtime_sdk-*.whl"))
    if not wheels:
        pytest.fail(f"no workers-runtime-sdk wheel in {WHEEL_DIR}: run `make setup`", pytrace=False)
    return wheels[-1]


@pytest.fixture(scope="module")
def pyodide_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerHarness]:
    """Real Pyodide with the SDK wheel and exactly the modules wrangler would ship."""
    if not (JS_DIR / "node_modules" / "pyodide").is_dir():
        pytest.fail("npm packages missing in tests/edge/pyodide: run `make setup`", pytrace=False)
    files = shipped_files(tmp_path_factory.mktemp("worker-bundle"))
    with WorkerHarness(_sdk_wheel(), log_dir=tmp_path_factory.mktemp("harness")) as harness:
        harness.call("files", files=files)
        yield harness
