"""Talking to a running stack (``p13n up``) the way an operator's script would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ops.cli import main
from ops.stack import Stack, StackInfo
from tests.support.timing import wait_until

__all__ = ["api", "running_stack"]


@contextmanager
def running_stack(directory: Path) -> Iterator[StackInfo]:
    """``p13n up``'s stack in ``directory``, once ``p13n status`` says it is healthy (the
    processor holds its leases); every part stopped by PID on exit."""
    s = Stack(directory=directory)
    info = s.start()
    try:
        status = ["status", "--stack", info.directory, "--json"]
        wait_until(lambda: main(status) == 0, 20, "the stack never became healthy", interval_s=0.2)
        yield info
    finally:
        s.stop()


def api(info: StackInfo, method: str, path: str, **kw: Any) -> httpx.Response:
    """``method path`` on the stack's origin with its admin token."""
    headers = {"authorization": f"Bearer {info.tokens['admin']}"}
    return httpx.request(method, info.origin_url + path, headers=headers, timeout=5, **kw)
