"""Fixtures of the edge tests: plain-data factories, the stand-in origin, the Pyodide Worker.

The stand-in origin (``standin_origin.py``) is a real uvicorn process on 127.0.0.1; the Worker
runs in real Pyodide under Node (``pyodide/harness.mjs``), one process per test module because
Pyodide takes seconds to start. Both are stopped by PID at teardown. Neither skips: without
``make setup`` (npm packages, the SDK wheel) the tests fail and say so.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cache_keys.tokens import KeyRing, SigningKey
from edge.settings import EdgeSettings, settings_from_env
from tools import worker_bundle

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = Path(__file__).parent / "pyodide"
HARNESS = JS_DIR / "harness.mjs"
WHEEL_DIR = ROOT / ".venv" / "wheels"
SEGMENT_KEYS = "k1:standin-secret-0123456789"
KEYRING = KeyRing(SigningKey("k1", b"standin-secret-0123456789"))
NOW_MS = 1_764_000_000_000


def make_settings(**overrides: str) -> EdgeSettings:
    env = {"ORIGIN_URL": "http://127.0.0.1:9", "SEGMENT_KEYS": SEGMENT_KEYS, **overrides}
    return settings_from_env(env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StandinOrigin:
    """Handle on the stand-in origin process and its test controls."""

    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process
        self.http = httpx.Client(base_url=url, timeout=10)

    def control(self, what: str, doc: dict[str, Any] | None = None) -> Any:
        if doc is None:
            return self.http.get(f"/_test/{what}").raise_for_status().json()
        return self.http.post(f"/_test/{what}", json=doc).raise_for_status().json()

    def stats(self) -> dict[str, Any]:
        return self.control("stats")

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="session")
def standin_origin() -> Iterator[StandinOrigin]:
    """The stand-in origin in a uvicorn process of its own, on a free loopback port."""
    port = free_port()
    env = {**os.environ, "STANDIN_SEGMENT_KEYS": SEGMENT_KEYS}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "tests.edge.standin_origin:app"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        cwd=ROOT,
        env=env,
    )
    origin = StandinOrigin(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 20
    while True:
        try:
            origin.stats()
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                origin.close()
                pytest.fail("the stand-in origin did not start", pytrace=False)
            time.sleep(0.1)
    try:
        yield origin
    finally:
        origin.close()


@pytest.fixture
def origin(standin_origin: StandinOrigin) -> StandinOrigin:
    """The stand-in origin, reset for this test."""
    standin_origin.control("reset", {})
    return standin_origin


class WorkerHarness:
    """The Node process running the Worker in Pyodide; one JSON command per line."""

    def __init__(self, process: subprocess.Popen[str], log_path: Path | None = None) -> None:
        self.process = process
        self.log_path = log_path  # the harness's stderr: what the Worker logged
        self._selector = selectors.DefaultSelector()
        assert process.stdout is not None
        self._selector.register(process.stdout, selectors.EVENT_READ)
        self._next = 0
        self.hello = self._read(120)

    def _read(self, timeout_s: float) -> Any:
        assert self.process.stdout is not None
        if not self._selector.select(timeout_s):
            raise TimeoutError("the Pyodide harness did not answer")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Pyodide harness exited ({self.process.poll()})")
        return json.loads(line)

    def call(self, op: str, timeout_s: float = 60, **args: Any) -> Any:
        assert self.process.stdin is not None
        self._next += 1
        self.process.stdin.write(json.dumps({"id": self._next, "op": op, **args}) + "\n")
        self.process.stdin.flush()
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
        self._selector.close()
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process.stdout.close()


def _sdk_wheel() -> Path:
    wheels = sorted(WHEEL_DIR.glob("workers_runtime_sdk-*.whl"))
    if not wheels:
        pytest.fail(f"no workers-runtime-sdk wheel in {WHEEL_DIR}: run `make setup`", pytrace=False)
    return wheels[-1]


def _shipped_and_vector_files(bundle_dir: Path) -> dict[str, str]:
    files = {f: (bundle_dir / f).read_text() for f in worker_bundle.build(bundle_dir)}
    for extra in ["tests/__init__.py", "tests/vectors/__init__.py", "tests/vectors/check.py"]:
        files[extra] = (ROOT / extra).read_text()
    for vec in (ROOT / "tests" / "vectors").glob("*.json"):
        files[vec.relative_to(ROOT).as_posix()] = vec.read_text()
    return files


@pytest.fixture(scope="module")
def pyodide_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerHarness]:
    """Real Pyodide with the SDK wheel and exactly the modules wrangler would ship."""
    if not (JS_DIR / "node_modules" / "pyodide").is_dir():
        pytest.fail("npm packages missing in tests/edge/pyodide: run `make setup`", pytrace=False)
    wheel = _sdk_wheel()
    files = _shipped_and_vector_files(tmp_path_factory.mktemp("worker-bundle"))
    log_path = tmp_path_factory.mktemp("harness") / "stderr.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        ["node", str(HARNESS), str(wheel)],
        cwd=JS_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    harness = WorkerHarness(process, log_path)
    try:
        harness.call("files", files=files)
        yield harness
    finally:
        harness.close()
        log.close()
