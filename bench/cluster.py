"""Scale-out on a local Redis Cluster: processor processes, and origin reads vs one Redis.

Starts a 3-master + 3-replica cluster and a single redis-server on free loopback ports.

1. Processor: loads the same synthetic stream (8 partitions, every feature on, archive
   written) into the emptied cluster, then runs 1 or 2 ``p13n segmenter run`` processes
   (one consumer group) until every entry is committed. events/s = entries / (time of the
   last commit - time the first events were counted applied), so process start-up is not
   measured. 1- and 2-process runs are interleaved; medians count. Each run also says where
   the CPU went (processors, the six servers, the whole machine): two processes cannot go
   faster than the cores they and the servers find free.
2. Origin: the same world as ``bench/origin.py`` (shoppers, catalog, lists) loaded into the
   cluster and into the single Redis, one ``p13n origin`` per store, wrk on
   ``/v1/recommendations`` alternating between them; medians count.
3. Memory: bytes per shopper on the cluster (MEMORY USAGE of a sample of shoppers' keys
   as the processor wrote them), for sizing.

Everything shares this machine's cores with the cluster's six servers, so the figures are
ratios within one run, not capacity numbers for real hardware.

Last line: cluster_events_per_s_1p=<a> cluster_events_per_s_2p=<b>
origin_cluster_vs_single=<cluster rps / single-Redis rps>
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import redis  # noqa: E402

from ops import shop  # noqa: E402
from ops.local.cluster import LocalCluster  # noqa: E402
from ops.local.process import die_with_parent  # noqa: E402
from ops.local.redis import RedisServer, free_port  # noqa: E402
from segmenter import event  # noqa: E402
from segmenter.connection import connect_sync  # noqa: E402
from segmenter.schema import GROUP, Keys, partition_of  # noqa: E402

PARTITIONS = 8
KEYS = Keys()
COUNTERS = ("applied", "duplicate", "late", "dead", "erased")


def _bench_origin():
    """bench/origin.py as a module (its world loader, origin launcher and wrk runner)."""
    spec = importlib.util.spec_from_file_location("bench_origin", _HERE / "origin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cluster_url(c: LocalCluster) -> str:
    return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in c.startup_nodes)


def load_stream(r: redis.Redis, raws: list[tuple[int, bytes]]) -> None:
    r.flushall()
    pipe = r.pipeline(transaction=False)
    for p in range(PARTITIONS):
        pipe.xgroup_create(KEYS.stream(p), GROUP, id="0", mkstream=True)
    for i, (p, raw) in enumerate(raws):
        pipe.xadd(KEYS.stream(p), {"e": raw})
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def counted(r: redis.Redis) -> int:
    pipe = r.pipeline(transaction=False)
    for p in range(PARTITIONS):
        pipe.hmget(KEYS.partition_meta(p), list(COUNTERS))
    return sum(int(v or 0) for row in pipe.execute() for v in row)


def spawn(url: str, name: str, archive: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ, "P13N_REDIS_URL": url, "P13N_PARTITIONS": str(PARTITIONS),
        "P13N_ARCHIVE_DIR": str(archive), "P13N_LISTS_INTERVAL_S": "0",
        "P13N_LEASE_TTL_MS": "2000", "P13N_CONSUMER": name,
        "P13N_TRUSTED_LOCAL": "1",  # a throwaway cluster: the dev segment key is fine
    }  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "segmenter", "run"],
        env=env, cwd=_HERE.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent(),  # noqa: PLW1509 - a killed bench leaves no processor
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds every process of the machine has used so far (all cores)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


@dataclass
class Run:
    """One measured run: events/s and where the CPU went while it ran."""

    rate: float
    processor_cpu_s: float
    redis_cpu_s: float
    machine_cpu_s: float
    elapsed_s: float

    def line(self, events: int) -> str:
        per = 1e6 / events
        return (
            f"{self.rate:.0f} events/s; CPU per event: processors "
            f"{self.processor_cpu_s * per:.0f} us, 6 redis-servers {self.redis_cpu_s * per:.0f} "
            f"us; cores busy: ours {(self.processor_cpu_s + self.redis_cpu_s) / self.elapsed_s:.2f}"
            f", whole machine {self.machine_cpu_s / self.elapsed_s:.2f} of {os.cpu_count()}"
        )


def processor_rate(url: str, raws: list[tuple[int, bytes]], procs: int, tmp: Path,
                   servers: list[int]) -> Run:  # fmt: skip
    r = connect_sync(url)
    load_stream(r, raws)
    run = [spawn(url, f"bench-{i}", tmp / f"arc-{procs}-{i}") for i in range(procs)]
    pids = [p.pid for p in run]
    try:
        first = None
        deadline = time.monotonic() + 600
        while (n := counted(r)) < len(raws):
            if first is None and n > 0:
                first = (time.perf_counter(), n, cpu_s(pids), cpu_s(servers), machine_busy_s())
            if any(p.poll() is not None for p in run) or time.monotonic() > deadline:
                raise SystemExit("a processor exited or the run took too long")
            time.sleep(0.01)
        end = time.perf_counter()
        used = (cpu_s(pids), cpu_s(servers), machine_busy_s())
    finally:
        for p in run:
            stop(p)
        r.close()
    assert first is not None
    elapsed = end - first[0]
    return Run(
        (len(raws) - first[1]) / elapsed, used[0] - first[2], used[1] - first[3],
        used[2] - first[4], elapsed,
    )  # fmt: skip


def bytes_per_shopper(url: str, sample: list[str]) -> float:
    r = connect_sync(url)
    total = 0
    for sid in sample:
        total += sum(int(r.memory_usage(k) or 0) for k in KEYS.shopper_keys(sid))
    r.close()
    return total / len(sample)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shoppers", type=int, default=20_000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    bo = _bench_origin()
    wrk = bo.ensure_wrk()
    evs = list(shop.events(args.events, seed=3, start_ms=int(time.time() * 1000) - 3_600_000))
    raws = [(partition_of(e.user, PARTITIONS), event.encode(e)) for e in evs]
    with (
        LocalCluster(node_timeout_ms=5000) as cluster,
        RedisServer() as single,
        tempfile.TemporaryDirectory(prefix="p13n-bench-cluster-") as tmpdir,
    ):
        tmp = Path(tmpdir)
        url = cluster_url(cluster)
        servers = [n.process.pid for n in cluster.nodes if n.process is not None]
        rates: dict[int, list[float]] = {1: [], 2: []}
        for rnd in range(args.rounds):
            for procs in (1, 2):
                got = processor_rate(url, raws, procs, tmp / f"r{rnd}", servers)
                rates[procs].append(got.rate)
                print(f"round {rnd + 1}: {procs} process(es) {got.line(len(raws))}", flush=True)
        users = sorted({e.user for e in evs})
        per_shopper = bytes_per_shopper(url, random.Random(1).sample(users, min(500, len(users))))
        print(
            f"{per_shopper:.0f} bytes per shopper on the cluster (keys as the processor wrote "
            f"them, {len(users)} shoppers): {per_shopper * 1e6 / 2**30:.2f} GiB per million "
            "before replicas and overhead",
            flush=True,
        )

        connect_sync(url).flushall()
        ids = bo.load_world(url, args.shoppers, random.Random(20261126))
        bo.load_world(single.url, args.shoppers, random.Random(20261126))
        ids_file = tmp / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        script = tmp / "origin.lua"
        script.write_text(bo.LUA % ("/v1/recommendations?user=", ids_file))
        origins = {}
        try:
            for name, store in (("cluster", url), ("single", single.url)):
                port = free_port()
                origins[name] = (bo.start_origin(store, port, 1), f"http://127.0.0.1:{port}")
            rps: dict[str, list[float]] = {"cluster": [], "single": []}
            for _, base in origins.values():
                bo.wrk_rps(wrk, base, script, 2, args.connections)  # warm-up
            for rnd in range(args.rounds):
                for name, (_, base) in origins.items():
                    got = bo.wrk_rps(wrk, base, script, args.seconds, args.connections)
                    rps[name].append(got)
                    print(f"round {rnd + 1}: origin on {name} {got:.0f} req/s", flush=True)
        finally:
            for proc, _ in origins.values():
                bo.stop(proc)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    ratio = statistics.median(rps["cluster"]) / statistics.median(rps["single"])
    print(
        f"cluster_events_per_s_1p={one:.0f} cluster_events_per_s_2p={two:.0f} "
        f"origin_cluster_vs_single={ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
