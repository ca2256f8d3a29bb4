"""The edge decision per request, in CPython and in Pyodide (the Worker's interpreter).

One decision: verify the signed segment cookie and decode the context cookie, assign three
running experiments, build the cache key, judge a stored entry's freshness, rerank 200
candidates into the top 12. No I/O. Each figure is the median time of one call (12,000 calls
after warm-up, over 1,000 different shoppers, each with its own signed cookies). The CPython
run also times a trivial function the same way, for scale on this shared machine. Pyodide
runs this same file under Node with the npm ``pyodide`` package that ``make setup`` installs.

Also the Worker's whole ``fetch()`` for a cache hit against a hello-world Worker's, in the
same Pyodide (``worker_fetch_p50``).

Last line: edge_decide_us=<cpython p50> pyodide_decide_us=<pyodide p50> baseline_us=<p50>
worker_hit_us=<p50> worker_hello_us=<p50> worker_hit_of_hello=<hello / hit>
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as `python bench/edge.py`, this file's folder comes first on sys.path and the file
# itself would shadow the `edge` package.
if __name__ == "__main__":
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from cache_keys.segments import hash_segment
from cache_keys.tokens import KeyRing, SigningKey, sign_segment
from cache_keys.wire import (
    CONTEXT_COOKIE,
    SEGMENT_COOKIE,
    SHOPPER_COOKIE,
    ContextCookie,
    SegmentList,
    encode_context,
    parse_edge_config,
    parse_list_item,
)
from edge.entry import decode_entry, encode_entry, entry_tags
from edge.freshness import freshness
from edge.plan import decide
from edge.request import RequestParts
from edge.rerank import rerank
from edge.settings import settings_from_env

ROOT = Path(__file__).resolve().parent.parent
NOW_MS = 1_764_000_000_000
CALLS = 12_000
WARMUP = 2_000
SHOPPERS = 1_000
FETCH_CALLS = 1_000
SECRET = "k1:bench-secret-0123456789"
RING = KeyRing(SigningKey("k1", b"bench-secret-0123456789"))
CATEGORIES = [f"cat-{i}" for i in range(12)]


def _experiments() -> list[dict[str, Any]]:
    """Three running experiments on the home route, each splitting shoppers in two."""
    return [
        {
            "key": key,
            "seed": key,
            "status": "running",
            "routes": ["home"],
            "variations": [{"name": "control"}, {"name": "b", "weights": {"category_boost": 0.5}}],
            "weights": [0.5, 0.5],
            "coverage": 0.9,
        }
        for key in ("rail-algo", "banner", "price-sort")
    ]


def _setup() -> tuple[Callable[[RequestParts], Any], list[RequestParts]]:
    hseg = hash_segment("returning|grocery|mid", b"bench-segment-key")
    experiments = _experiments()
    experiments[1]["namespace"] = ["layer", 0.0, 0.5]
    cfg = parse_edge_config(
        {
            "v": 1,
            "etag": '"bench"',
            "generated_at_ms": NOW_MS,
            "experiments": experiments,
            "generations": {"*": [1, 1], "sku:item-0007": [2, 2]},
            "item_mask": ["ITEM-0003"],
            "routes": {"home": {"k": 12, "category_cap": 3}},
        }
    )
    settings = settings_from_env(
        {"ORIGIN_URL": "https://origin.test", "SEGMENT_KEYS": SECRET, "LOCALES": "en-us,de-de"}
    )
    items = tuple(
        parse_list_item(
            {
                "item": f"ITEM-{i:04d}",
                "score": 1.0 - i / 400,
                "category": CATEGORIES[i % len(CATEGORIES)],
                "price": float(1 + i % 50),
                "durable": i % 9 == 0,
            },
            "bench",
        )
        for i in range(200)
    )
    seglist = SegmentList(hseg, "control", '"l"', NOW_MS, items)
    tags = entry_tags("home", hseg, [e["key"] for e in experiments], seglist)
    entry = decode_entry(encode_entry(seglist, tags, cfg, NOW_MS - 5_000))
    assert entry is not None
    # Each shopper carries its own signed cookies (its own expiry, its own context), as real
    # shoppers do: a memo keyed by the cookie or its MAC gets no help from repeats here
    # beyond the 12 calls per shopper the loop makes.
    requests = []
    for i in range(SHOPPERS):
        seg = sign_segment(hseg, NOW_MS // 1000 + 86_400 - i, RING)
        recent = (CATEGORIES[i % 12], CATEGORIES[(i * 7 + 3) % 12])
        ctx = encode_context(
            ContextCookie(
                recent,
                (f"ITEM-{i % 200:04d}", f"ITEM-{(i * 3 + 11) % 200:04d}"),
                (f"ITEM-{(i * 9) % 200:04d}",),
                NOW_MS // 1000 - i,
            ),
            RING,
        )
        cookie = (
            f"{SHOPPER_COOKIE.name}=s{i:07d}-abcdefghijklm; "
            f"{SEGMENT_COOKIE.name}={seg}; {CONTEXT_COOKIE.name}={ctx}"
        )
        headers = {
            "cookie": cookie,
            "accept-language": "de-DE,de;q=0.9",
            "user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) Mobile/15E148",
        }
        requests.append(RequestParts.from_http("home", headers, "k=12"))

    # Every shopper has a valid id and segment (nothing minted, the segment verified), and
    # the context cookie decodes: the typical returning shopper, not a cheaper path.
    for parts in (requests[0], requests[-1]):
        probe = decide(parts, cfg, settings, NOW_MS).identity
        assert not probe.minted and probe.hseg == hseg and probe.context is not None, probe

    def decide_one(parts: RequestParts) -> Any:
        plan = decide(parts, cfg, settings, NOW_MS)
        fresh = freshness(entry, plan.policy, cfg, NOW_MS)
        ranked = rerank(
            entry.seglist.items,
            plan.identity.context,
            k=plan.k,
            category_cap=plan.policy.category_cap,
            weights=plan.weights,
            mask=cfg.item_mask,
        )
        return plan.key.path, fresh.state, ranked

    return decide_one, requests


def baseline(parts: RequestParts) -> Any:
    return parts.route


def p50_us(fn: Callable[[RequestParts], Any], requests: list[RequestParts]) -> float:
    """Median time of one call, in microseconds, over ``CALLS`` calls after warm-up.

    Each call is timed on its own (the clock costs well under a microsecond), so the median
    is the typical request, untouched by garbage collection or a neighbour's burst.
    """
    n = len(requests)
    for i in range(WARMUP):
        fn(requests[i % n])
    clock = time.perf_counter_ns
    times = []
    for i in range(CALLS):
        parts = requests[i % n]
        start = clock()
        fn(parts)
        times.append(clock() - start)
    return statistics.median(times) / 1000


def measure(with_baseline: bool = True) -> dict[str, float]:
    """The figures of this interpreter (what the Pyodide run calls)."""
    decide_one, requests = _setup()
    sample = decide_one(requests[0])
    assert sample[0].startswith("/__p13n/v1/home/") and len(sample[2]) == 12
    out = {"decide_us": p50_us(decide_one, requests)}
    if with_baseline:
        out["baseline_us"] = p50_us(baseline, requests)
    return out


_PYODIDE_RUNNER = """
import { loadPyodide } from "%(pyodide)s";
import fs from "node:fs";
const files = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const py = await loadPyodide({ stdout: (s) => process.stderr.write(s + "\\n") });
for (const [path, text] of Object.entries(files)) {
  const full = "/bench/" + path;
  py.FS.mkdirTree(full.slice(0, full.lastIndexOf("/")));
  py.FS.writeFile(full, text);
}
let r;
try {
  r = py.runPython(`
import sys, json
sys.path.insert(0, "/bench")
import bench_edge
json.dumps([sys.version.split()[0], bench_edge.measure(with_baseline=False)])
`);
} catch (e) {
  process.stderr.write(String(e.message || e).slice(-3000) + "\\n");
  process.exit(1);
}
process.stdout.write(r + "\\n");
"""


def pyodide_p50() -> tuple[str, float]:
    """Run ``measure`` in Pyodide under Node; (Python version, decide p50 in µs)."""
    sys.path.insert(0, str(ROOT))
    from tools.worker_bundle import shipped_files  # noqa: PLC0415

    files = {f: (ROOT / f).read_text() for f in shipped_files() if f != "worker.py"}
    files = {f: t for f, t in files.items() if f != "edge/worker.py"}
    files["bench_edge.py"] = Path(__file__).read_text()
    pyodide = ROOT / "tests/edge/pyodide/node_modules/pyodide/pyodide.mjs"
    if not pyodide.exists():
        raise SystemExit("npm pyodide missing: run `make setup`")
    with tempfile.TemporaryDirectory() as tmp:
        runner = Path(tmp) / "run.mjs"
        runner.write_text(_PYODIDE_RUNNER % {"pyodide": pyodide.as_uri()})
        data = Path(tmp) / "files.json"
        data.write_text(json.dumps(files))
        out = subprocess.run(
            ["node", str(runner), str(data)],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.splitlines() if len(ln) < 400]
        raise SystemExit("pyodide run failed:\n" + "\n".join(lines[-30:]))
    version, figures = json.loads(out.stdout.strip().splitlines()[-1])
    return version, float(figures["decide_us"])


FETCH_SHOPPERS = 50  # each a hit after the warm-up (its key filled by its first visit)


def _bench_config() -> dict[str, Any]:
    experiments = _experiments()
    return {
        "v": 1,
        "etag": '"bench"',
        "generated_at_ms": 0,
        "max_age_s": 3600,
        "experiments": experiments,
        "routes": {"home": {"k": 12, "category_cap": 3, "max_age_s": 3600}},
    }


def worker_fetch_p50() -> dict[str, float]:
    """The Worker's whole ``fetch()`` for a cache hit vs a hello-world Worker's, in Pyodide.

    Run by the test harness (tests/edge/pyodide/harness.mjs): real Pyodide and the SDK the
    deploy ships, the Worker as ``wrangler deploy --dry-run`` uploads it; test doubles for
    the Cloudflare platform only (the Cache API, ``ctx``), and the stand-in origin process
    for the first visit of each key (a miss) and the exposure posts (drained untimed).
    """
    sys.path.insert(0, str(ROOT))
    from tests.support.edge import KEYRING  # noqa: PLC0415
    from tests.support.worker import (  # noqa: PLC0415
        StandinOrigin,
        WorkerHarness,
        wrangler_dry_run,
    )

    hseg = hash_segment("returning|grocery|mid", b"bench-segment-key")
    ring = KEYRING  # the harness's SEGMENT_KEYS (and context keys)
    items = [
        {
            "item": f"ITEM-{i:04d}",
            "score": 1.0 - i / 400,
            "category": CATEGORIES[i % len(CATEGORIES)],
            "price": float(1 + i % 50),
        }
        for i in range(200)
    ]
    requests = []
    for i in range(FETCH_SHOPPERS):
        seg = sign_segment(hseg, 4_000_000_000 - i, ring)
        ctx = encode_context(
            ContextCookie((CATEGORIES[i % 12],), (f"ITEM-{i:04d}",), (), int(time.time())), ring
        )
        cookie = (
            f"{SHOPPER_COOKIE.name}=s{i:07d}-abcdefghijklm; "
            f"{SEGMENT_COOKIE.name}={seg}; {CONTEXT_COOKIE.name}={ctx}"
        )
        headers = [
            ["cookie", cookie],
            ["accept-language", "de-DE,de;q=0.9"],
            ["user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) Mobile/15E148"],
        ]
        requests.append({"url": "https://shop.test/p13n/v1/rail/home?k=12", "headers": headers})
    with tempfile.TemporaryDirectory() as tmp:
        out = wrangler_dry_run(Path(tmp) / "out")
        if out.returncode != 0:
            raise SystemExit(f"wrangler deploy --dry-run failed:\n{out.stdout}{out.stderr}")
        with StandinOrigin(log_dir=tmp) as origin, WorkerHarness(Path(tmp) / "out") as w:
            origin.control("config", _bench_config())
            origin.control("list", {"hseg": hseg, "variant": "control", "items": items})
            w.new_isolate(origin.url, timeout_ms=5000, LOCALES="en-us,de-de")
            figures = {}
            for worker in ("hello", "rail", "hello", "rail"):  # interleaved: a shared machine
                r = w.call(
                    "time_fetch", timeout_s=600, requests=requests, worker=worker, n=FETCH_CALLS
                )
                if r["errors"]:
                    raise SystemExit(f"background work failed: {r['errors'][:3]}")
                if worker == "rail" and set(r["statuses"]) != {"200 hit"}:
                    raise SystemExit(f"not every timed rail answer was a hit: {r['statuses']}")
                figures[worker] = min(figures.get(worker, r["p50_us"]), r["p50_us"])
    return figures


def main() -> int:
    cpython = measure()
    print(
        f"CPython {sys.version.split()[0]}: decide p50 {cpython['decide_us']:.1f} µs, "
        f"baseline p50 {cpython['baseline_us']:.3f} µs"
    )
    version, pyo = pyodide_p50()
    print(f"Pyodide (Python {version}): decide p50 {pyo:.1f} µs")
    fetch = worker_fetch_p50()
    ratio = fetch["hello"] / fetch["rail"]
    print(
        f"Pyodide Worker fetch(): cache hit p50 {fetch['rail']:.0f} µs, "
        f"hello-world p50 {fetch['hello']:.0f} µs ({ratio:.2f} of hello)"
    )
    print(
        f"edge_decide_us={cpython['decide_us']:.1f} pyodide_decide_us={pyo:.1f} "
        f"baseline_us={cpython['baseline_us']:.3f} worker_hit_us={fetch['rail']:.0f} "
        f"worker_hello_us={fetch['hello']:.0f} worker_hit_of_hello={ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
