"""The real servers the tests run as child processes: ``p13n origin`` and ``p13n edge``.

Both are ``tests.support.process.Process``: own process group, output in a log, ready when
their health check answers (deadline scaled to the machine), stopped by PID.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

from ops.local.redis import RedisServer, free_port
from tests.support import data
from tests.support.process import Process, http_ok

__all__ = [
    "CLI",
    "EdgeProcess",
    "OriginProcess",
    "PlainEdgeProcess",
    "origin_env",
    "seeded_origin",
]

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
        self,
        origin: OriginProcess,
        env: Mapping[str, str],
        *,
        log_dir: str | Path | None = None,
        workers: int = 1,
    ) -> None:
        port = free_port()
        # worker i serves its admin app on admin + i
        admin_port = free_port() if workers == 1 else free_port_run(workers)
        self.port, self.workers = port, workers
        self.url = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.admins = [f"http://127.0.0.1:{admin_port + i}" for i in range(workers)]
        args = ["--origin", origin.url, "--port", str(port), "--admin-port", str(admin_port)]
        super().__init__(
            [*CLI, "edge", *args, "--redis-url", origin.redis.url, "--workers", str(workers)],
            name="edge",
            env={**env, "SEGMENT_KEYS": data.SIGNING, "CONTEXT_KEYS": data.SIGNING},
            log_dir=log_dir,
            ready=lambda: all(http_ok(a + "/healthz", _personalizing)() for a in self.admins),
        )


def free_port_run(n: int) -> int:
    """The first of ``n`` consecutive free loopback ports."""
    for _ in range(50):
        first = free_port()
        if first + n > 65535:
            continue
        socks = []
        try:
            for i in range(1, n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", first + i))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return first
    raise RuntimeError(f"no run of {n} free ports")


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


class PlainEdgeProcess(Process):
    """``p13n edge`` as a plain shared HTTP cache (no signing keys, no heartbeats, no purge
    pushes) in front of any origin URL; ``env`` adds ``P13N_EDGE_*`` settings. Ready when
    its admin ``/healthz`` and its shopper port answer."""

    def __init__(
        self,
        origin_url: str,
        env: Mapping[str, str] | None = None,
        *,
        args: tuple[str, ...] = (),
        log_dir: str | Path | None = None,
    ) -> None:
        port, admin_port = free_port(), free_port()
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin_port}"
        base = {
            k: v for k, v in os.environ.items() if not k.endswith(("SEGMENT_KEYS", "CONTEXT_KEYS"))
        }
        base.pop("P13N_EDGE_REDIS_URL", None)
        cli = ["--origin", origin_url, "--port", str(port), "--admin-port", str(admin_port)]
        cli += ["--workers", "1"]
        super().__init__(
            [*CLI, "edge", *cli, *args],
            name="edge",
            env={**base, "P13N_EDGE_HEARTBEAT_S": "0", **(env or {})},
            log_dir=log_dir,
            ready=lambda: admin_ok() and shopper_port_answers(),
        )
        admin_ok = http_ok(self.admin + "/healthz")
        # The admin server may listen first: the shopper port must answer too (its 404 for
        # an admin-plane path, which never reaches the origin).
        shopper_port_answers = http_ok(self.url + "/healthz", lambda r: r.status_code == 404)
