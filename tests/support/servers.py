"""The real servers the tests run as child processes: ``p13n origin`` and ``p13n edge``.

Both are ``tests.support.process.Process``: own process group, output in a log, ready when
their health check answers (deadline scaled to the machine), stopped by PID.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

from ops.local.redis import RedisServer, free_port
from tests.support import data
from tests.support.process import Process, http_ok

__all__ = ["CLI", "EdgeProcess", "OriginProcess", "origin_env", "seeded_origin"]

CLI = [sys.executable, "-m", "ops.cli"]


def origin_env(redis_url: str, **settings: str) -> dict[str, str]:
    """This process's environment plus the origin's: the seeded shop's keys, every role's
    token, ``redis_url`` as its store, then ``settings`` (``P13N_*`` names)."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.update(
        {
            "P13N_REDIS_URL": redis_url,
            "P13N_SEGMENT_KEY": data.SEGMENT_KEY.decode(),
            "P13N_SEGMENT_SIGNING": data.SIGNING,
            "P13N_CONTEXT_SIGNING": data.SIGNING,
            "P13N_ADMIN_TOKENS": ",".join(f"{role}:{tok}" for tok, role in data.TOKENS.items()),
            **settings,
        }
    )
    return env


class OriginProcess(Process):
    """``p13n origin`` under uvicorn on a free loopback port, on the Redis ``redis``."""

    def __init__(
        self,
        redis: RedisServer,
        env: Mapping[str, str],
        *,
        args: tuple[str, ...] = (),
        log_dir: str | Path | None = None,
    ) -> None:
        self.redis = redis
        self.port = free_port()
        super().__init__(
            [*CLI, "origin", "--port", str(self.port), *args],
            name="origin",
            env=env,
            log_dir=log_dir,
            ready=http_ok(self.url + "/healthz"),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pause(self) -> None:
        """SIGSTOP: it keeps accepting connections and answers nothing (slower than any budget)."""
        self.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        self.send_signal(signal.SIGCONT)

    def requests_to(self, route: str) -> int:
        """How many requests the origin has served for a route template (its /metrics)."""
        text = httpx.get(self.url + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("p13n_origin_request_seconds_count{") and (
                f'route="{route}"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)


class EdgeProcess(Process):
    """``p13n edge`` in front of ``origin``: shoppers on ``url``, health and metrics on
    ``admin``; ready when its admin ``/healthz`` says ``personalization`` is on."""

    def __init__(
        self, origin: OriginProcess, env: Mapping[str, str], *, log_dir: str | Path | None = None
    ) -> None:
        port, admin_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin_port}"
        args = ["--origin", origin.url, "--port", str(port), "--admin-port", str(admin_port)]
        super().__init__(
            [*CLI, "edge", *args, "--redis-url", origin.redis.url],
            name="edge",
            env={**env, "SEGMENT_KEYS": data.SIGNING, "CONTEXT_KEYS": data.SIGNING},
            log_dir=log_dir,
            ready=http_ok(self.admin + "/healthz", _personalizing),
        )


def _personalizing(response: httpx.Response) -> bool:
    return response.status_code == 200 and bool(response.json().get("personalization"))


@contextmanager
def seeded_origin(tmp_path: Path, **settings: str) -> Iterator[OriginProcess]:
    """The origin process on a seeded Redis of its own (the shop of ``tests.support.data``),
    trusted-local, refreshing fast; both stopped by PID on exit. ``settings`` override."""
    with RedisServer(data_dir=tmp_path) as server:
        r = redis.Redis.from_url(server.url)
        data.seed_shop(r)
        r.close()
        env = origin_env(
            server.url,
            **{
                "P13N_TRUSTED_LOCAL": "1",
                "P13N_REFRESH_MS": "100",
                "P13N_EDGE_CONFIG_MAX_AGE_S": "5",
                **settings,
            },
        )
        with OriginProcess(server, env, log_dir=tmp_path) as proc:
            yield proc
