"""A real Prometheus server for the tests: Debian's ``prometheus`` package (``make setup``
installs it as root, with ``promtool``), on a free loopback port, its data in a temporary
directory, scraping the given ``/metrics`` endpoints every second; stopped by PID."""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import yaml

from ops.local.redis import free_port

PACKAGE = "prometheus"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def binary(name: str) -> str:
    """Path of ``prometheus`` or ``promtool``; fails the test naming the package otherwise."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found: install Debian's package '{PACKAGE}' (`make setup` does, as "
            f"root; else apt-get install {PACKAGE})",
            pytrace=False,
        )
    return path


@dataclass
class Prometheus:
    """One Prometheus scraping ``jobs`` (job name -> base URLs serving ``/metrics``)."""

    jobs: dict[str, list[str]]
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        scrapes = [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [u.split("://", 1)[1].rstrip("/") for u in urls]}],
            }
            for job, urls in self.jobs.items()
        ]
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrapes,
        }

    def start(self) -> Prometheus:
        """Start the server and wait until it is ready (bounded)."""
        conf = self.directory / "prometheus.yml"
        conf.write_text(yaml.safe_dump(self.config()))
        self.log = open(self.directory / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={conf}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.directory / "prometheus.log").read_text(errors="replace")
                raise RuntimeError(f"prometheus did not become ready:\n{log[-2000:]}")
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(self.url + "/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant-query result vector of ``expr``; raises on a query error."""
        r = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5.0)
        doc = r.json()
        if doc.get("status") != "success":
            raise AssertionError(f"{expr}: {doc.get('errorType')}: {doc.get('error')}")
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def targets_up(self) -> dict[str, bool]:
        """Job -> whether every one of its targets was scraped successfully."""
        doc = httpx.get(self.url + "/api/v1/targets", timeout=5.0).json()
        up: dict[str, bool] = {}
        for t in doc["data"]["activeTargets"]:
            job = t["labels"]["job"]
            up[job] = up.get(job, True) and t["health"] == "up"
        return up

    def stop(self) -> None:
        """Stop the server by PID (SIGTERM, then SIGKILL) and close its log."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None


def finite(result: list[dict[str, Any]]) -> list[float]:
    """The finite sample values of an instant-query result."""
    values = [float(s["value"][1]) for s in result]
    return [v for v in values if math.isfinite(v)]
