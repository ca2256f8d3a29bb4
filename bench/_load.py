"""Load-generation helpers shared by the HTTP benchmarks (wrk, process control)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ops.local.process import die_with_parent

__all__ = ["ensure_debian", "ensure_wrk", "start_origin", "stop", "wrk_rps"]


def ensure_wrk() -> str:
    """wrk from PATH, else Debian's package installed with apt-get (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing Debian's package", flush=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        timeout=300,
    )
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def ensure_debian(binary: str, package: str) -> str:
    """``binary`` from PATH (or /usr/sbin), else Debian's ``package`` installed with apt-get
    as root, service start-up suppressed (policy-rc.d) so nothing listens on its usual port."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    found = shutil.which(binary, path=path)
    if found:
        return found
    print(f"{binary} not found: installing Debian's {package}", flush=True)
    policy = Path("/usr/sbin/policy-rc.d")
    own = not policy.exists()
    if own:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
            check=True, env=env, timeout=600,
        )  # fmt: skip
    finally:
        if own:
            policy.unlink(missing_ok=True)
    found = shutil.which(binary, path=path)
    if not found:
        raise SystemExit(f"{binary} could not be installed")
    return found


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child started with ``start_new_session=True``, by its process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def wrk_rps(wrk: str, base: str, script: Path, seconds: int, conns: int) -> float:
    """Requests per second of one wrk run; fails loudly on any non-2xx/3xx answer."""
    out = subprocess.run(
        [wrk, "-t1", f"-c{conns}", f"-d{seconds}s", "-s", str(script), base],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m is None or errors is not None:
        raise SystemExit(f"wrk run failed or saw errors:\n{out}")
    return float(m.group(1))


def start_origin(
    env: Mapping[str, str], port: int, root: Path, workers: int = 1, timeout_s: float = 30
) -> subprocess.Popen[bytes]:
    """``p13n origin`` on 127.0.0.1:``port`` in its own session, once ``/readyz`` answers 200
    (stopped by PID and the benchmark exits when it does not within ``timeout_s``)."""
    import httpx  # noqa: PLC0415 - only the benchmarks that start an origin need it

    cmd = [sys.executable, "-m", "ops.cli", "origin", "--port", str(port),
           "--workers", str(workers)]  # fmt: skip
    # The hook takes no lock, so it is safe beside threads (see die_with_parent).
    hook = die_with_parent()
    proc = subprocess.Popen(cmd, env=dict(env), cwd=root, start_new_session=True, preexec_fn=hook)  # noqa: PLW1509
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(proc)
    raise SystemExit("origin did not become ready")
