"""Fixtures of the edge tests: the stand-in origin and the Pyodide Worker.

The stand-in origin is a real uvicorn process on 127.0.0.1; the Worker runs in real Pyodide
under Node, one process per test module because Pyodide takes seconds to start, loaded from
what ``wrangler deploy --dry-run --outdir`` writes (run once per session): the modules and the
``python_modules/`` the deploy would upload. All are ``tests.support`` processes, stopped by
PID at teardown. None skips: without ``make setup`` (npm packages, the SDK wheel, Node 22 for
wrangler) the tests fail and say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.worker import (
    JS_DIR,
    StandinOrigin,
    WorkerHarness,
    vector_files,
    wrangler_dry_run,
)


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


@pytest.fixture(scope="session")
def deploy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a deploy would upload: the dry run's output directory."""
    outdir = tmp_path_factory.mktemp("wrangler") / "out"
    out = wrangler_dry_run(outdir)
    if out.returncode != 0:
        pytest.fail(f"wrangler deploy --dry-run failed:\n{out.stdout}{out.stderr}", pytrace=False)
    return outdir


@pytest.fixture(scope="module")
def pyodide_worker(
    tmp_path_factory: pytest.TempPathFactory, deploy_dir: Path
) -> Iterator[WorkerHarness]:
    """Real Pyodide running exactly what the deploy uploads (modules and python_modules/)."""
    if not (JS_DIR / "node_modules" / "pyodide").is_dir():
        pytest.fail("npm packages missing in tests/edge/pyodide: run `make setup`", pytrace=False)
    with WorkerHarness(deploy_dir, log_dir=tmp_path_factory.mktemp("harness")) as harness:
        harness.call("files", files=vector_files())
        yield harness
