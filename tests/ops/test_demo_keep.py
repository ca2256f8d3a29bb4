"""``p13n demo --keep``: the summary, then the stack (and its storefront) stays up until
SIGTERM or Ctrl-C, which stop every child and remove the throwaway directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "ops.cli"]


def test_demo_keep_leaves_the_storefront_up_until_sigterm(tmp_path) -> None:
    demo = subprocess.Popen(
        [*CLI, "demo", "--keep", "--duration", "3", "--rate", "5", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for raw in demo.stdout:  # bounded by the test's timeout
            lines.append(raw.decode(errors="replace").rstrip())
            if lines[-1].startswith("kept up: "):
                break
        shop = next(line.split()[1] for line in lines if line.startswith("shop "))
        assert lines[-1] == f"kept up: the storefront is {shop} ; Ctrl-C stops everything"
        assert any(line.startswith("demo ") for line in lines)  # the verdict came first
        # A loaded machine may have opened the edge's origin breaker during the run: the
        # storefront is back within the breaker's reset time.
        deadline = time.monotonic() + 30
        while (page := httpx.get(shop, timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, f"storefront answered {page.status_code}"
            time.sleep(0.5)
        assert "p13n shop" in page.text
        demo.send_signal(signal.SIGTERM)
        out, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if demo.stdout is not None:
            demo.stdout.close()
    tail = out.decode(errors="replace").splitlines()
    assert "stopping" in tail and tail[-1].startswith("demo ")
    with pytest.raises(httpx.HTTPError):
        httpx.get(shop, timeout=2)
    assert list(tmp_path.iterdir()) == []
