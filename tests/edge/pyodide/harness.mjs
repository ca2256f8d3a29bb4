// Runs the Cloudflare Python Worker in real Pyodide (npm `pyodide`, the version the pinned
// workerd runs for our compatibility date: see wrangler.toml) under Node, the way workerd runs
// it, and takes commands as JSON lines on stdin (answers on stdout).
//
// What is real: Pyodide; the Worker exactly as `wrangler deploy --dry-run --outdir DIR` would
// upload it (the test passes DIR): its modules under /session/metadata and its python_modules/
// (Cloudflare's workers-runtime-sdk, as the deploy ships it) on sys.path before site-packages
// with its .pth files run, as workerd's setup_python_search_path does; Node's fetch to real
// origin processes on 127.0.0.1.
// What is a test double, and why:
//   _pyodide_entrypoint_helper, _cloudflare_compat_flags  workerd-internal modules the SDK
//       imports; patchWaitUntil copies the borrowed Python awaitable before waitUntil returns,
//       as workerd's does, so a Worker that relied on the proxy outliving the call would fail.
//       (workerd's own `_cloudflare` package is absent, so the SDK's .pth loader skips its
//       package patches, as it does outside workerd.)
//   caches.default  an in-memory Cache API: match/put by URL, expiry from Cache-Control
//       max-age, purge by Cache-Tag, and it refuses (records) responses with Set-Cookie or
//       Vary: Cookie instead of storing them; a test can make match or put throw (a fault
//       the real Cache API cannot be made to show on demand).
//   env.EDGE_CONFIG  an in-memory Workers KV namespace (get/put of text), filled by the test.
//   Date.now        real time plus an offset the test advances (the controllable clock).
//
// Usage: node harness.mjs <wrangler --outdir DIR>
import { loadPyodide } from "pyodide";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";

const [bundleDir] = process.argv.slice(2);
const SESSION = "/session/metadata"; // where workerd puts the Worker's modules
const PYTHON_MODULES = SESSION + "/python_modules";

// ---- the clock ---------------------------------------------------------------------------
const realNow = Date.now.bind(Date);
let offsetMs = 0;
Date.now = () => realNow() + offsetMs;

// ---- caches.default ----------------------------------------------------------------------
function maxAgeOf(headers) {
  const cc = headers.get("cache-control") || "";
  const m = /(?:s-maxage|max-age)=(\d+)/.exec(cc);
  return m ? Number(m[1]) : 0;
}

class CacheDouble {
  constructor() {
    this.entries = new Map();
    this.refused = [];
    this.faults = { match: false, put: false };
  }
  async match(request) {
    if (this.faults.match) throw new Error("injected Cache API fault (match)");
    const url = typeof request === "string" ? request : request.url;
    const e = this.entries.get(url);
    if (!e) return undefined;
    if (Date.now() >= e.expiresAt) {
      this.entries.delete(url);
      return undefined;
    }
    return new Response(e.body, { status: e.status, headers: e.headers });
  }
  async put(request, response) {
    if (this.faults.put) throw new Error("injected Cache API fault (put)");
    const url = typeof request === "string" ? request : request.url;
    new URL(url); // throws on a relative URL, as the Cache API does
    const vary = (response.headers.get("vary") || "").toLowerCase();
    if (response.headers.has("set-cookie") || vary.includes("cookie")) {
      this.refused.push(url); // Cloudflare does not store these; a Worker must not try
      return;
    }
    const body = await response.text();
    this.entries.set(url, {
      body,
      status: response.status,
      headers: [...response.headers],
      expiresAt: Date.now() + maxAgeOf(response.headers) * 1000,
      tags: (response.headers.get("cache-tag") || "").split(",").filter(Boolean),
    });
  }
  async delete(request) {
    return this.entries.delete(typeof request === "string" ? request : request.url);
  }
  purgeTag(tag) {
    let n = 0;
    for (const [url, e] of this.entries) {
      if (e.tags.includes(tag)) {
        this.entries.delete(url);
        n += 1;
      }
    }
    return n;
  }
}
const cache = new CacheDouble();
globalThis.caches = { default: cache };

// ---- env.EDGE_CONFIG: a Workers KV namespace ---------------------------------------------
// The class name matters: the SDK wraps env bindings whose constructor is KvNamespace.
class KvNamespace {
  constructor() {
    this.values = new Map();
    this.reads = 0;
  }
  async get(key, options) {
    this.reads += 1;
    if (options !== undefined && options !== "text" && options.type && options.type !== "text")
      throw new Error("this double stores text only");
    return this.values.has(key) ? this.values.get(key) : null;
  }
}
const kv = new KvNamespace();

// ---- workerd-internal modules the SDK imports --------------------------------------------
const patched = new WeakSet();
function patchWaitUntil(ctx) {
  if (Object.prototype.toString.call(ctx) !== "[object ExecutionContext]") return;
  if (patched.has(ctx)) return;
  const orig = ctx.waitUntil.bind(ctx);
  ctx.waitUntil = (p) => {
    // The awaitable is borrowed: Python destroys the proxy when this call returns.
    if (p && typeof p.copy === "function") p = p.copy();
    orig(
      (async () => {
        try {
          await p;
        } finally {
          if (p && typeof p.destroy === "function") p.destroy();
        }
      })(),
    );
  };
  patched.add(ctx);
}

// ---- the Worker's execution context ------------------------------------------------------
const pending = [];
// A background task that fails outside waitUntil (say, a destroyed proxy) is reported by the
// next drain instead of killing the process.
const unhandled = [];
process.on("unhandledRejection", (e) => unhandled.push(String(e && e.stack ? e.stack : e)));
function newContext() {
  return {
    [Symbol.toStringTag]: "ExecutionContext",
    waitUntil(p) {
      pending.push(Promise.resolve(p));
    },
    passThroughOnException() {},
  };
}

async function drain() {
  let settled = 0;
  const errors = [];
  while (pending.length) {
    const batch = pending.splice(0);
    for (const r of await Promise.allSettled(batch)) {
      settled += 1;
      if (r.status === "rejected") errors.push(String(r.reason));
    }
  }
  errors.push(...unhandled.splice(0));
  return { settled, errors };
}

// ---- Pyodide -----------------------------------------------------------------------------
const py = await loadPyodide({ stdout: (s) => process.stderr.write(s + "\n") });
py.setStderr({ batched: (s) => process.stderr.write(s + "\n") });
// Every file of the upload, at the path workerd gives it (README.md is wrangler's own note).
for (const rel of fs.readdirSync(bundleDir, { recursive: true })) {
  const src = path.join(bundleDir, rel);
  if (rel === "README.md" || fs.statSync(src).isDirectory()) continue;
  const dest = SESSION + "/" + rel.split(path.sep).join("/");
  py.FS.mkdirTree(dest.slice(0, dest.lastIndexOf("/")));
  py.FS.writeFile(dest, new Uint8Array(fs.readFileSync(src)));
}
py.registerJsModule("_pyodide_entrypoint_helper", {
  patchWaitUntil,
  doAnImport: async (name) => {
    throw new Error(`no JavaScript module ${name} in this test`);
  },
  cloudflareWorkersModule: {},
  cloudflareSocketsModule: {},
});
py.registerJsModule("_cloudflare_compat_flags", {
  python_workflows_implicit_dependencies: true,
  python_request_headers_preserve_commas: true,
});
// workerd's setup_python_search_path: python_modules before site-packages, its .pth files run.
py.runPython(`
import sys
from site import addsitedir
sys.path.insert(0, "${SESSION}")
i = next(i for i, p in enumerate(sys.path) if "site-packages" in p)
sys.path.insert(i, "${PYTHON_MODULES}")
addsitedir("${PYTHON_MODULES}")
sys.path.append("/app")  # the contract vectors and their runner (tests only)
`);

// The call workerd makes for `fetch` on a WorkerEntrypoint: instance per request with
// (ctx, env), the JS Request converted by the SDK, the Python Response converted back.
py.runPython(`
import importlib, sys

def _new_isolate():
    for name in [m for m in sys.modules if m == "worker" or m.split(".")[0] in ("edge", "cache_keys")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    import worker  # noqa: F401

async def _call_fetch(ctx, env, request):
    import worker
    from workers import python_from_rpc, python_to_rpc
    instance = worker.Default(ctx, env)
    return python_to_rpc(await instance.fetch(python_from_rpc(request)))

def _run_vectors(path):
    from pathlib import Path
    from tests.vectors.check import run_all
    count, failures = run_all(Path(path))
    return [count, failures]
`);

let env = {};

// A hello-world Worker in the same Pyodide, called the same way (bench/edge.py's scale).
let helloDefined = false;
function helloCall() {
  if (!helloDefined) {
    py.runPython(`
from workers import Response as _HelloResponse, WorkerEntrypoint as _HelloEntrypoint

class _Hello(_HelloEntrypoint):
    async def fetch(self, request):
        return _HelloResponse("hello")

async def _call_hello(ctx, env, request):
    from workers import python_from_rpc, python_to_rpc
    return python_to_rpc(await _Hello(ctx, env).fetch(python_from_rpc(request)))
`);
    helloDefined = true;
  }
  return py.globals.get("_call_hello");
}

// Median time of the Worker's whole fetch() (the call workerd makes, the body read back), for
// each of ``requests`` in turn; the background work each leaves is drained outside the timing
// (workerd runs it after the response is sent). Returns what the last answers said.
async function timeFetch({ requests, n = 1000, warmup = 200, worker = "rail" }) {
  const call = worker === "hello" ? helloCall() : py.globals.get("_call_fetch");
  const times = [];
  const statuses = {};
  const errors = [];
  try {
    for (let i = 0; i < warmup + n; i++) {
      const { url, headers } = requests[i % requests.length];
      const ctx = newContext();
      const request = new Request(url, { method: "GET", headers });
      const t0 = performance.now();
      const resp = await call(ctx, env, request);
      await resp.text();
      const t1 = performance.now();
      if (i >= warmup) {
        times.push(t1 - t0);
        const detail = /detail=([a-z-]+)/.exec(resp.headers.get("cache-status") || "");
        const key = `${resp.status} ${detail ? detail[1] : "-"}`;
        statuses[key] = (statuses[key] || 0) + 1;
      }
      errors.push(...(await drain()).errors);
    }
  } finally {
    call.destroy();
  }
  times.sort((a, b) => a - b);
  return { p50_us: times[times.length >> 1] * 1000, statuses, errors };
}

async function doFetch({ url, method = "GET", headers = [] }) {
  const ctx = newContext();
  const request = new Request(url, { method, headers });
  const call = py.globals.get("_call_fetch");
  try {
    const resp = await call(ctx, env, request);
    const body = await resp.text();
    const hs = [...resp.headers].filter(([k]) => k !== "set-cookie");
    for (const c of resp.headers.getSetCookie()) hs.push(["set-cookie", c]);
    return { status: resp.status, headers: hs, body, pending: pending.length };
  } finally {
    call.destroy();
  }
}

const ops = {
  async files({ files }) {
    for (const [path, text] of Object.entries(files)) {
      const full = "/app/" + path;
      py.FS.mkdirTree(full.slice(0, full.lastIndexOf("/")));
      py.FS.writeFile(full, text);
    }
    return Object.keys(files).length;
  },
  async new_isolate({ vars, bind_kv = false }) {
    env = { ...vars };
    if (bind_kv) env.EDGE_CONFIG = kv;
    py.globals.get("_new_isolate")();
    return py.runPython("import sys; sys.version.split()[0]");
  },
  fetch: doFetch,
  time_fetch: timeFetch,
  drain,
  async advance({ ms }) {
    offsetMs += ms;
    return offsetMs;
  },
  async cache() {
    return {
      entries: [...cache.entries].map(([url, e]) => ({ url, headers: e.headers, body: e.body, tags: e.tags })),
      refused: cache.refused,
    };
  },
  async kv_put({ key, value }) {
    if (value === null) kv.values.delete(key);
    else kv.values.set(key, value);
    return kv.reads;
  },
  async now() {
    return Date.now();
  },
  async purge_tag({ tag }) {
    return cache.purgeTag(tag);
  },
  async clear_cache() {
    cache.entries.clear();
    cache.refused.length = 0;
    cache.faults = { match: false, put: false };
    return true;
  },
  async cache_faults({ match = false, put = false }) {
    cache.faults = { match, put };
    return cache.faults;
  },
  async vectors({ path }) {
    const r = py.globals.get("_run_vectors")(path).toJs();
    return { count: r[0], failures: r[1] };
  },
  async run_python({ code }) {
    const r = await py.runPythonAsync(code);
    return r && typeof r.toJs === "function" ? r.toJs({ dict_converter: Object.fromEntries }) : r;
  },
};

const rl = readline.createInterface({ input: process.stdin });
process.stdout.write(JSON.stringify({ ready: true, pyodide: py.version }) + "\n");
for await (const line of rl) {
  if (!line.trim()) continue;
  const msg = JSON.parse(line);
  let reply;
  try {
    reply = { id: msg.id, ok: true, result: await ops[msg.op](msg) };
  } catch (e) {
    reply = { id: msg.id, ok: false, error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
