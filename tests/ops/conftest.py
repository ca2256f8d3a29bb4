"""A running system for the operations commands: ``Stack`` starts Redis, origin, processor
and edge as child processes (by PID, stopped at teardown) and writes ``stack.json``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.cli import main
from ops.local.redis import free_port
from ops.stack import Stack, StackInfo
from tests.support.timing import wait_until


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """The whole system, once per session; waits until the processor holds its leases."""
    s = Stack(directory=tmp_path_factory.mktemp("stack"))
    info = s.start()
    try:
        status = ["status", "--stack", info.directory, "--json"]
        wait_until(lambda: main(status) == 0, 20, "the stack never became healthy", interval_s=0.2)
        yield info
    finally:
        s.stop()


@pytest.fixture
def stopped(tmp_path: Path) -> Path:
    """A ``stack.json`` whose parts are not running (free ports nobody listens on)."""
    port = free_port()
    info = {
        "directory": str(tmp_path),
        "redis_url": f"redis://127.0.0.1:{port}/0",
        "origin_url": f"http://127.0.0.1:{port}",
        "edge_url": f"http://127.0.0.1:{port}",
        "edge_admin_url": f"http://127.0.0.1:{port}",
        "tokens": {"admin": "a" * 24},
    }
    (tmp_path / "stack.json").write_text(json.dumps(info))
    return tmp_path
