"""The self-hosted edge as a plain shared cache against the anchors: nginx proxy_cache and
Varnish, same machine, same origin, same wrk load, measured in the same run.

The origin is a small stdlib HTTP server answering a 2 KB JSON with ``Cache-Control: public,
max-age=3600``. In front of it, each on a free loopback port: ``p13n edge`` (no signing
keys: a plain RFC 9111 cache; ``--workers`` as given, default the number of cores), nginx
(Debian's package; ``proxy_cache``, one worker per core) and Varnish (Debian's package;
``-b`` to the origin, the built-in VCL, malloc storage). Missing packages are installed with
apt-get as root (service start-up suppressed). Each is warmed and checked to answer from its
cache; then wrk (``-t2 -c50`` by default) runs against each in turn, the order rotated every
round, and the median of the rounds counts. Every process is started in a session of its own
and stopped by PID.

Fair to all three: the same origin, wrk command and connections; the edge runs one worker per
core as nginx does (``worker_processes`` = cores), Varnish its default thread pools. wrk runs
on the same cores as the server it loads (there is no other machine), and so does anything
else running on the machine: each round prints the load average, and only rounds run under
the same load compare. Each round also prints every server's CPU per 1,000 requests (user +
system time of all its processes, from /proc), which other load on the machine disturbs less.

Last line: edge_rps=<E> nginx_rps=<N> varnish_rps=<V> ratio=<E/max(N,V)>
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# bench/origin.py would shadow the ``origin`` package: drop this folder from the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("_load", _HERE / "_load.py")
assert _spec is not None and _spec.loader is not None
_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_load)

import httpx  # noqa: E402

from ops.local.process import die_with_parent  # noqa: E402
from ops.local.redis import free_port  # noqa: E402

PATH = "/catalog/featured.json"
ORIGIN_SRC = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = json.dumps({"items": [{"sku": f"SKU-{i:04d}", "name": f"item {i}", "price": i % 50}
                             for i in range(40)]}).encode()[:2048].ljust(2048, b" ")

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "public, max-age=3600")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""
NGINX_CONF = """
worker_processes {workers};
daemon off;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    proxy_cache_path {tmp}/nginx-cache keys_zone=bench:16m max_size=256m;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
}}
"""


def spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child in a session of its own (stopped by its PID's group), output discarded."""
    return subprocess.Popen(
        argv,
        env=env,
        cwd=_HERE.parent,
        start_new_session=True,
        preexec_fn=die_with_parent(),  # noqa: PLW1509 - a killed bench leaves no server
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_cached(url: str, cached: Callable[[httpx.Response], bool], name: str) -> None:
    """Poll ``url`` until it answers 200 from the cache (``cached``), or give up."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200 and cached(r):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} never answered {url} from its cache")


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in group ``pgid`` (a server and its
    workers, each started in a session of its own), from /proc."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # fields[0] is the state: pgrp is field 5 of stat
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


def wrk_run(wrk: str, url: str, seconds: int, threads: int, conns: int) -> tuple[float, int]:
    """(requests per second, requests) of one wrk run; fails on any non-2xx/3xx answer or
    socket error."""
    out = subprocess.run(
        [wrk, f"-t{threads}", f"-c{conns}", f"-d{seconds}s", url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    if m is None or n is None or "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk run failed or saw errors:\n{out}")
    return float(m.group(1)), int(n.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="edge workers")
    args = ap.parse_args()
    wrk = _load.ensure_wrk()
    nginx = _load.ensure_debian("nginx", "nginx")
    varnishd = _load.ensure_debian("varnishd", "varnish")
    tmp = Path(tempfile.mkdtemp(prefix="p13n-bench-caches-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        o_port, e_port, a_port, n_port, v_port = (free_port() for _ in range(5))
        procs.append(spawn([sys.executable, "-c", ORIGIN_SRC, str(o_port)]))
        origin = f"http://127.0.0.1:{o_port}"
        env = {k: v for k, v in os.environ.items() if k not in ("SEGMENT_KEYS", "CONTEXT_KEYS")}
        env.update({"P13N_EDGE_HEARTBEAT_S": "0", "P13N_EDGE_REDIS_URL": ""})
        edge_argv = [sys.executable, "-m", "ops.cli", "edge", "--origin", origin]
        edge_argv += ["--port", str(e_port), "--admin-port", str(a_port)]
        edge_proc = spawn([*edge_argv, "--workers", str(args.workers)], env)
        procs.append(edge_proc)
        conf = tmp / "nginx.conf"
        # The same worker count as the edge: one process per core by default.
        conf.write_text(
            NGINX_CONF.format(workers=args.workers, tmp=tmp, origin_port=o_port, port=n_port)
        )
        nginx_proc = spawn([nginx, "-p", str(tmp), "-c", str(conf)])
        procs.append(nginx_proc)
        varnish_dir = tmp / "varnish"
        varnish_proc = spawn([
            varnishd, "-F", "-j", "none", "-n", str(varnish_dir),
            "-a", f"127.0.0.1:{v_port}", "-b", f"127.0.0.1:{o_port}",
            "-s", "malloc,256m",
        ])  # fmt: skip
        procs.append(varnish_proc)
        groups = {"edge": edge_proc.pid, "nginx": nginx_proc.pid, "varnish": varnish_proc.pid}
        targets = {
            "edge": f"http://127.0.0.1:{e_port}{PATH}",
            "nginx": f"http://127.0.0.1:{n_port}{PATH}",
            "varnish": f"http://127.0.0.1:{v_port}{PATH}",
        }
        wait_cached(targets["edge"], lambda r: "; hit" in r.headers.get("cache-status", ""), "edge")
        wait_cached(targets["nginx"], lambda r: r.headers.get("x-cache-status") == "HIT", "nginx")
        wait_cached(
            targets["varnish"],
            lambda r: len(r.headers.get("x-varnish", "").split()) == 2,
            "varnish",
        )
        names = list(targets)
        runs: dict[str, list[float]] = {n: [] for n in names}
        # Server CPU per 1,000 requests (every process of the server's group): steadier than
        # requests per second when other work shares the cores.
        cpu: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                before = group_cpu_s(groups[name])
                rps, count = wrk_run(
                    wrk, targets[name], args.seconds, args.threads, args.connections
                )
                used = group_cpu_s(groups[name]) - before
                runs[name].append(rps)
                cpu[name].append(used * 1e6 / max(1, count))
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            print(
                f"round {r + 1}: "
                + " ".join(f"{n}={runs[n][-1]:.0f}" for n in names)
                + " cpu_ms_per_1k "
                + " ".join(f"{n}={cpu[n][-1]:.1f}" for n in names)
                + f" (load average {load})",
                flush=True,
            )
        med = {n: statistics.median(v) for n, v in runs.items()}
        med_cpu = {n: statistics.median(v) for n, v in cpu.items()}
    finally:
        for proc in reversed(procs):
            _load.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = med["edge"] / max(med["nginx"], med["varnish"])
    print("median server CPU ms per 1,000 requests: "
          + " ".join(f"{n}={v:.1f}" for n, v in med_cpu.items()))  # fmt: skip
    print(
        f"edge_rps={med['edge']:.0f} nginx_rps={med['nginx']:.0f} "
        f"varnish_rps={med['varnish']:.0f} ratio={ratio:.3f}"
    )


if __name__ == "__main__":
    main()
