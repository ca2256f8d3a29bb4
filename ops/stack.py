"""``p13n up``: the whole system on one machine, with an embedded default.

Starts a throwaway Redis (the binary ``ops.local.redis`` resolves; data in the stack's
directory) unless ``REDIS_URL`` names an existing one, then the origin, the stream processor
and a self-hosted edge, each a child process in its own session with its log in the stack's
directory; ``ops.supervisor`` starts a child that exits again (its own Redis too, on the same
port with the same data) while the others serve. Secrets (signing key rings, admin tokens) are
generated for a stack directory once and kept in its ``keys.json`` (``ops.keyring``), beside
the Redis data they sign and hash: a restart on the same data keeps them, so stored segments
stay known and shoppers' cookies stay valid. They are written, with the URLs, the children's
pids and restarts, to ``stack.json`` so the other commands (``p13n status``, ``p13n
simulate``, …) find the system. ``reload`` (SIGHUP) restarts the parts one at a time with
``keys.json`` read again, each opening its log anew. ``stop`` ends every child by PID, each
child's whole process group: SIGTERM, one grace period for all of them, SIGKILL for what is
left, then Redis the same way; no orphans. ``stack.json`` stays, marked stopped: the next
start in the directory takes the same ports when they are free.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import redis
from redis.exceptions import RedisError

from ops.keyring import KEY_NAMES, ROLES, ring, stack_keys, stack_secrets, write_private
from ops.local.process import die_with_parent, stop_all
from ops.local.redis import RedisServer, RedisServerError, pick_port

__all__ = [
    "DEFAULT_DIR",
    "KEY_NAMES",
    "ROLES",
    "Stack",
    "StackError",
    "StackInfo",
    "load_info",
    "running_info",
    "stack_keys",
    "stack_secrets",
]

DEFAULT_DIR = Path(".p13n")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0  # the grace period of SIGTERM, shared by every child


class StackError(RuntimeError):
    """A part did not start, or no stack is running where one was expected."""


@dataclass
class StackInfo:
    """What ``stack.json`` holds: where everything is and how to talk to it."""

    directory: str
    redis_url: str
    origin_url: str
    edge_url: str
    edge_admin_url: str
    tokens: dict[str, str]
    processor_metrics_url: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    started_at_ms: int = 0
    # Per supervised child: pid, restarts, last exit, pending restart (``ops.supervisor``).
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "running", "reloading" (SIGHUP: the parts restart one by one) or "stopped" (a clean
    # stop keeps this file: the next `p13n up` takes the same ports when they are free).
    state: str = "running"
    up_pid: int = 0  # the `p13n up` process: SIGHUP reloads, SIGTERM stops
    reloads: int = 0
    stopped_at_ms: int = 0

    @property
    def admin_token(self) -> str:
        return self.tokens["admin"]


def load_info(directory: Path = DEFAULT_DIR) -> StackInfo:
    """The running stack's info; ``StackError`` with a clear message when there is none."""
    path = directory / "stack.json"
    if not path.exists():
        raise StackError(f"no stack found at {path}: start one with `p13n up`")
    doc = json.loads(path.read_text())
    return StackInfo(**doc)


def running_info(directory: Path = DEFAULT_DIR) -> StackInfo:
    """``load_info`` of a stack that runs; ``StackError`` saying so when it was stopped."""
    info = load_info(directory)
    if info.state == "stopped":
        raise StackError(
            f"the stack at {directory} is stopped: start it again with `p13n up --dir {directory}`"
        )
    return info


def _check_redis(url: str) -> None:
    """``StackError`` in one line unless the Redis at ``url`` answers PING."""
    shown = url.split("@", 1)[-1]  # never print a password
    try:
        client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    except ValueError as exc:
        raise StackError(f"REDIS_URL {shown} is not a Redis URL: {exc}") from exc
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        raise StackError(
            f"Redis at REDIS_URL {shown} is not reachable ({type(exc).__name__}: {exc}); "
            "start it, or unset REDIS_URL for a throwaway Redis"
        ) from exc
    finally:
        client.close()


@dataclass
class Stack:
    """Start and stop the local system."""

    directory: Path = DEFAULT_DIR
    redis_url: str | None = None
    workers: int = 1
    stop_grace_s: float = STOP_TIMEOUT_S
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # How each child was started, so the supervisor can start it again the same way.
    commands: dict[str, list[str]] = field(default_factory=dict)
    child_env: dict[str, str] = field(default_factory=dict)
    redis: RedisServer | None = None
    info: StackInfo | None = None
    # ``stack.lock`` in the directory, locked (flock) while this stack runs: one stack per
    # directory (two Redis servers on one AOF would corrupt it). The kernel drops the lock
    # when the process dies, so a crash leaves no stale lock.
    lock: IO[str] | None = None

    def env(self, info: StackInfo, keys: dict[str, str]) -> dict[str, str]:
        """The environment every part shares (one set of keys, so cookies verify everywhere)."""
        env = dict(os.environ)
        env.update(
            {
                "P13N_REDIS_URL": info.redis_url,
                "P13N_SEGMENT_KEY": keys["segment_hash"],
                "P13N_SEGMENT_SIGNING": ring(keys["segment_sign"]),
                "P13N_CONTEXT_SIGNING": ring(keys["context_sign"]),
                "P13N_CONSOLE_SIGNING": ring(keys["console_sign"]),
                "P13N_ADMIN_TOKENS": ",".join(f"{r}:{t}" for r, t in info.tokens.items()),
                "P13N_TRUSTED_LOCAL": "1",
                # A child's own `p13n` reads this stack, never one in its working directory.
                "P13N_STACK": str(self.directory.resolve()),
                "P13N_ARCHIVE_DIR": str(self.directory / "archive"),
                "SEGMENT_KEYS": ring(keys["segment_sign"]),
                "CONTEXT_KEYS": ring(keys["context_sign"]),
                "ORIGIN_URL": info.origin_url,
                "P13N_EDGE_REDIS_URL": info.redis_url,
                "P13N_EDGE_ID": "edge-1",
                "P13N_EDGE_SERVICE_TOKEN": info.tokens["service"],
                "PYTHONUNBUFFERED": "1",
                # Local runs rebuild segment lists often, so a fresh system personalizes fast.
                "P13N_LISTS_INTERVAL_S": os.environ.get("P13N_LISTS_INTERVAL_S", "10"),
                "P13N_METRICS_PORT": info.processor_metrics_url.rsplit(":", 1)[1],
                # ...and edges pick up experiment and purge changes within seconds.
                "P13N_EDGE_CONFIG_MAX_AGE_S": os.environ.get("P13N_EDGE_CONFIG_MAX_AGE_S", "3"),
            }
        )
        env.pop("REDIS_URL", None)
        return env

    def start(self) -> StackInfo:
        """Start every part and wait until each answers; stops what started on failure."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _lock(self) -> None:
        path = self.directory / "stack.lock"
        lock = open(path, "a+")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip() or "?"
            lock.close()
            raise StackError(
                f"a stack is already running in {self.directory} (pid {pid}): stop it "
                f"(Ctrl-C in its terminal, or kill {pid}) or use another --dir"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self.lock = lock

    def _start(self) -> StackInfo:
        before = _previous(self.directory)
        redis_url = self.redis_url
        if redis_url is not None:
            _check_redis(redis_url)
        else:
            data = self.directory / "redis"
            data.mkdir(exist_ok=True)
            port = pick_port(getattr(before, "redis_url", ""), set())
            self.redis = RedisServer(port=port, aof=True, data_dir=data).start()
            redis_url = self.redis.url
        tokens, keys = stack_secrets(self.directory)
        taken = {self.redis.port} if self.redis is not None else set()
        origin_port, edge_port, admin_port, metrics_port = (
            pick_port(getattr(before, attr, ""), taken)
            for attr in ("origin_url", "edge_url", "edge_admin_url", "processor_metrics_url")
        )
        info = StackInfo(
            directory=str(self.directory.resolve()),
            redis_url=redis_url,
            origin_url=f"http://127.0.0.1:{origin_port}",
            edge_url=f"http://127.0.0.1:{edge_port}",
            edge_admin_url=f"http://127.0.0.1:{admin_port}",
            tokens=tokens,
            processor_metrics_url=f"http://127.0.0.1:{metrics_port}",
            started_at_ms=int(time.time() * 1000),
            up_pid=os.getpid(),
        )
        env = self.child_env = self.env(info, keys)
        py = [sys.executable, "-m", "ops.cli"]
        self.commands = {
            "origin": [*py, "origin", "--port", str(origin_port), "--workers", str(self.workers)],
            "processor": [*py, "segmenter", "run"],
            "edge": [
                *py, "edge", "--origin", info.origin_url, "--port", str(edge_port),
                "--admin-port", str(admin_port), "--redis-url", redis_url,
                # one worker: the stack's status and demo read one admin port's metrics
                "--workers", "1",
            ],
        }  # fmt: skip
        for name in PARTS:
            self._spawn(name, self.commands[name], env)
            self._wait_ready(name, info)
        self.info = info
        self.write_info()
        return info

    def _wait_ready(self, name: str, info: StackInfo) -> None:
        """Until ``name`` answers (the processor: at once; its leases come in their time)."""
        if name == "origin":
            self._wait_http(name, info.origin_url + "/healthz")
        elif name == "edge":
            self._wait_http(name, info.edge_admin_url + "/healthz")

    @property
    def supervised(self) -> tuple[str, ...]:
        """The processes ``p13n up`` restarts: its parts, and its own Redis if it has one."""
        return (*self.children, *(("redis",) if self.redis is not None else ()))

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The current process of the supervised ``name``."""
        if name == "redis":
            assert self.redis is not None and self.redis.process is not None
            return self.redis.process
        return self.children[name]

    def write_info(self, children: dict[str, dict[str, Any]] | None = None) -> None:
        """(Re)write ``stack.json`` with the children's current pids (and their supervision
        state): the same URLs, tokens and ports for the stack's whole life."""
        if self.info is None:
            return
        self.info.pids = {name: p.pid for name, p in self.children.items()}
        if self.redis is not None and self.redis.process is not None:
            self.info.pids["redis"] = self.redis.process.pid
        if children is not None:
            self.info.children = children
        # Owner-only: it holds every admin token in plain text. Replaced whole (rename), so
        # a reader never sees half a file.
        tmp = self.directory / "stack.json.tmp"
        write_private(tmp, json.dumps(asdict(self.info), indent=2))
        tmp.replace(self.directory / "stack.json")

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.commands[name] = args
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        self.children[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            args,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # `p13n up` killed outright leaves no part running; the hook takes no lock.
            preexec_fn=die_with_parent(),  # noqa: PLW1509
        )
        log.close()

    def respawn(self, name: str, grace_s: float = 0.0) -> subprocess.Popen[bytes]:
        """Start the child ``name`` again, as it was started (same ports, data and
        environment), after stopping its old process group (SIGTERM and ``grace_s``, then
        SIGKILL: what an exited child left, such as uvicorn's workers, dies at once)."""
        stop_all([self.process(name)], grace_s)
        if name == "redis":
            assert self.redis is not None
            with contextlib.suppress(RedisServerError):  # it exited again: the next backoff
                self.redis.start()
            return self.process(name)
        self._spawn(name, self.commands[name], self.child_env)
        return self.children[name]

    def reload(self, restart: Callable[[str], None]) -> list[str]:
        """SIGHUP: the keys read again from ``keys.json`` and every part restarted with them
        (``restart``: the supervisor's, which calls ``respawn``), one at a time, each waited
        for before the next, so the others serve meanwhile. Each opens its log file again:
        a rotated (renamed) log is written no more. Redis keeps running."""
        assert self.info is not None
        self.info.state = "reloading"
        self.write_info()
        _, keys = stack_secrets(self.directory)
        self.child_env = self.env(self.info, keys)
        for name in PARTS:
            restart(name)
            with contextlib.suppress(StackError):  # a part that fails is the supervisor's
                self._wait_ready(name, self.info)
        self.info.state = "running"
        self.info.reloads += 1
        self.write_info()
        return list(PARTS)

    def log_line(self, name: str, message: str) -> None:
        """One supervisor line in the child's own log, stamped (UTC)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(self.directory / f"{name}.log", "a") as log:
            log.write(f"{stamp} [p13n up] {message}\n")

    def _wait_http(self, name: str, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        proc = self.children[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(
                    f"{name} exited at start (code {proc.returncode}); see "
                    f"{self.directory / (name + '.log')}:\n{self.tail(name)}"
                )
            try:
                if httpx.get(url, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise StackError(f"{name} did not answer {url} within {READY_TIMEOUT_S:.0f} s")

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.directory / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop every part by PID within one grace period, then Redis (which they write to
        while stopping); ``stack.json`` is kept, marked stopped, for the next start and for
        ``p13n status``. Never raises for a part that will not die."""
        stuck = stop_all(reversed(self.children.values()), self.stop_grace_s)
        self.children.clear()
        if self.redis is not None:
            self.redis.stop(self.stop_grace_s)
            self.redis = None
        for proc in stuck:
            print(f"p13n: pid {proc.pid} survived SIGKILL", file=sys.stderr)
        if self.lock is not None:  # never touch another stack's state
            if self.info is not None:
                self.info.state, self.info.up_pid = "stopped", 0
                self.info.stopped_at_ms = int(time.time() * 1000)
                self.info.children = {}
                self.write_info()
            self.lock.close()  # releases the flock
            self.lock = None


PARTS = ("origin", "processor", "edge")  # in start order: the edge proxies to the origin


def _previous(directory: Path) -> StackInfo | None:
    """The ``stack.json`` an earlier ``p13n up`` left there (stopped, or crashed), if any."""
    try:
        return load_info(directory)
    except (StackError, OSError, ValueError, TypeError):
        return None
