"""A running system for the operations commands: ``Stack`` starts Redis, origin, processor
and edge as child processes (by PID, stopped at teardown) and writes ``stack.json``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.local.redis import free_port
from ops.stack import StackInfo
from tests.support.ops import running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """The whole system, once per session; waits until the processor holds its leases."""
    with running_stack(tmp_path_factory.mktemp("stack")) as info:
        yield info


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
