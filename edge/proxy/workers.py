"""Several edge processes on one port: ``p13n edge --workers N``.

Each worker is a whole edge (``edge.proxy.server.serve``) in a process of its own: its own
store, its own purge subscription, its own collapsing, its own heartbeat under its own edge
id (``<edge id>-w<i>``), so the origin counts an invalidation applied only when every worker
has applied it. The shopper port is bound by every worker with ``SO_REUSEPORT``: the kernel
spreads connections over them, no accept lock, no shared socket. Worker ``i`` serves its
admin app (``/metrics``, ``/metrics/worker``, ``/healthz``) on ``admin_port + i``; worker
0's ``/metrics``, on the admin port itself, is the sum over all workers (``peer_admins``,
``edge.proxy.aggregate``).

The supervisor (this module, in the ``p13n edge`` process) starts the workers in its own
process group, forwards SIGTERM / SIGINT to them as SIGTERM (a second SIGINT would make
uvicorn skip its graceful shutdown), and stops them all when one exits on its own (a port
in use, a crash): exit status 1 then, 0 after a requested stop.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

__all__ = ["peer_admins", "reuse_port_socket", "supervise", "worker_edge_id"]

POLL_S = 0.1
STOP_GRACE_S = 15.0
_CLEAN = {0, -signal.SIGTERM, -signal.SIGINT}


def worker_edge_id(edge_id: str, index: int) -> str:
    """``edge-host-8081``, 1 -> ``edge-host-8081-w1`` (within the origin's 40 characters)."""
    suffix = f"-w{index}"
    return edge_id[: 40 - len(suffix)].rstrip("-") + suffix


def peer_admins(host: str, admin_port: int, workers: int) -> list[str]:
    """The admin URLs of workers 1..N-1, as worker 0 scrapes them (a wildcard host is
    reached on loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - the address the workers bound, not ours
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    name = f"[{host}]" if ":" in host else host
    return [f"http://{name}:{admin_port + i}" for i in range(1, workers)]


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound with ``SO_REUSEPORT`` (every worker binds its own); ``OSError``
    when the port is held by a socket that does not share it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def supervise(argv_for: Callable[[int], Sequence[str]], workers: int) -> int:
    """Run ``workers`` child processes (``argv_for(i)``) until they stop; the exit status."""
    children = [
        subprocess.Popen(list(argv_for(i)))  # noqa: S603 - our own interpreter and module
        for i in range(workers)
    ]
    stopping = False

    def stop_all(signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop_all) for s in (signal.SIGTERM, signal.SIGINT)}
    failed = False
    try:
        while any(child.poll() is None for child in children):
            if not stopping and any(child.poll() is not None for child in children):
                failed = True  # one ended by itself: the edge is not whole, stop the rest
                stop_all()
            time.sleep(POLL_S)
    finally:
        deadline = time.monotonic() + STOP_GRACE_S
        for child in children:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
    codes = [child.returncode for child in children]
    if failed or any(code not in _CLEAN for code in codes):
        print(f"p13n edge: workers exited with {codes}", file=sys.stderr)
        return 1
    return 0
