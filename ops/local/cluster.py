"""A throwaway local Redis Cluster (3 masters + 3 replicas by default) for tests and benches.

Every node gets two checked free loopback ports: its client port and an explicit
``cluster-port`` (the default bus port, port + 10000, often lands on a port in use). The
cluster is created with ``redis-cli --cluster create`` when redis-cli is installed, else with
the same steps as plain commands (CLUSTER ADDSLOTSRANGE, MEET, REPLICATE) so it also works
with a server-only install. Nodes are stopped by PID.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ops.local.redis import RedisServer, RedisServerError, free_port

__all__ = ["LocalCluster"]

SLOTS = 16384


def _command(port: int, *args: str, timeout_s: float = 5.0) -> str:
    """One command over raw RESP; the simple, integer or bulk-string reply as text."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
        s.sendall(payload.encode())
        reader = s.makefile("rb")
        head = reader.readline().decode(errors="replace").rstrip("\r\n")
        if head.startswith("-"):
            raise RedisServerError(f"{' '.join(args)} on {port}: {head}")
        if head.startswith("$"):
            size = int(head[1:])
            return "" if size < 0 else reader.read(size + 2)[:-2].decode(errors="replace")
        return head.lstrip("+:")


@dataclass
class LocalCluster:
    """``masters`` masters with ``replicas`` replicas each, on 127.0.0.1."""

    masters: int = 3
    replicas: int = 1
    node_timeout_ms: int = 1000
    # None: redis-cli when installed; False: plain CLUSTER commands (server-only installs).
    use_cli: bool | None = None
    nodes: list[RedisServer] = field(default_factory=list)
    bus_ports: dict[int, int] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.port) for n in self.nodes]

    @property
    def url(self) -> str:
        """A ``redis://`` URL of one node (cluster clients discover the rest)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> LocalCluster:
        self._tmp = tempfile.TemporaryDirectory(prefix="p13n-cluster-")
        used: set[int] = set()
        for i in range(self.masters * (1 + self.replicas)):
            port, bus = self._two_ports(used)
            self.bus_ports[port] = bus
            data_dir = Path(self._tmp.name) / f"node-{i}"
            data_dir.mkdir()
            node = RedisServer(
                port=port,
                data_dir=data_dir,
                extra_args=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    str(bus),
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(self.node_timeout_ms),
                    "--cluster-require-full-coverage",
                    "no",
                ),
            )
            self.nodes.append(node.start())
        use_cli = shutil.which("redis-cli") is not None if self.use_cli is None else self.use_cli
        if use_cli:
            self._create_with_cli()
        else:
            self._create_with_commands()
        self.wait_ok()
        self.wait_replicas_synced()
        return self

    @staticmethod
    def _two_ports(used: set[int]) -> tuple[int, int]:
        while True:
            a, b = free_port(), free_port()
            if a != b and not {a, b} & used:
                used.update((a, b))
                return a, b

    def _create_with_cli(self) -> None:
        args = [
            "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{n.port}" for n in self.nodes),
            "--cluster-replicas",
            str(self.replicas),
            "--cluster-yes",
        ]
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
        if out.returncode != 0:
            raise RedisServerError(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")

    def _create_with_commands(self) -> None:
        masters = self.nodes[: self.masters]
        per = SLOTS // self.masters
        for i, node in enumerate(masters):
            end = SLOTS - 1 if i == self.masters - 1 else (i + 1) * per - 1
            _command(node.port, "CLUSTER", "ADDSLOTSRANGE", str(i * per), str(end))
        for node in self.nodes[1:]:
            first = self.nodes[0].port  # MEET must name the explicit bus port, not port + 10000
            _command(
                node.port, "CLUSTER", "MEET", "127.0.0.1", str(first), str(self.bus_ports[first])
            )
        self._wait(
            lambda: all(
                _command(n.port, "CLUSTER", "INFO").count(
                    "cluster_known_nodes:" + str(len(self.nodes))
                )
                for n in self.nodes
            ),
            "nodes to meet",
        )
        for j, node in enumerate(self.nodes[self.masters :]):
            master_id = _command(masters[j % self.masters].port, "CLUSTER", "MYID")
            _command(node.port, "CLUSTER", "REPLICATE", master_id)

    def _wait(self, check: object, what: str, timeout_s: float = 30.0) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (OSError, RedisServerError):
                pass
            time.sleep(0.1)
        raise RedisServerError(f"cluster: timed out waiting for {what}")

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Wait until every live node reports cluster_state:ok and ``masters`` masters serve
        (after a kill, that is once a replica has been promoted)."""

        def ok() -> bool:
            live = [n for n in self.nodes if n.process is not None and n.process.poll() is None]
            states = all("cluster_state:ok" in _command(n.port, "CLUSTER", "INFO") for n in live)
            return states and len(self.master_ports()) == self.masters

        self._wait(ok, "cluster_state:ok", timeout_s)

    def wait_replicas_synced(self, timeout_s: float = 30.0) -> None:
        """Wait until every live replica's link to its master is up (a replica that never
        synced refuses to fail over, its data being too old)."""

        def synced() -> bool:
            for n in self.nodes:
                if n.process is None or n.process.poll() is not None:
                    continue
                info = _command(n.port, "INFO", "replication")
                if "role:slave" in info and "master_link_status:up" not in info:
                    return False
            return True

        self._wait(synced, "replicas to sync", timeout_s)

    def master_ports(self) -> list[int]:
        """Ports of the nodes currently serving as masters."""
        out = []
        for n in self.nodes:
            if n.process is None or n.process.poll() is not None:
                continue
            if "role:master" in _command(n.port, "INFO", "replication"):
                out.append(n.port)
        return out

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.nodes.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
