"""The browser snippet: served by the origin, run in Node with a stub browser, its beacons
posted to the real collector (in-process) as a browser would send them."""

from __future__ import annotations

import json
import shutil
import subprocess

import msgpack
import pytest

from cache_keys import new_shopper_id
from origin.sdk import sdk_source
from segmenter.connection import connect_sync
from segmenter.schema import Keys, partition_of

pytestmark = pytest.mark.anyio
NODE = shutil.which("node")

HARNESS = r"""
const vm = require("vm");
const [src, gpc, cookie] = [process.argv[1], process.argv[2] === "1", process.argv[3]];
const beacons = [];
const window = {
  crypto: require("crypto").webcrypto,
  navigator: { globalPrivacyControl: gpc,
               sendBeacon: (url, body) => { beacons.push({ url, body }); return true; } },
  document: { cookie, visibilityState: "visible" },
  addEventListener: () => {},
};
vm.runInNewContext(src, { window, setTimeout, clearTimeout, Date, Math, JSON,
                          Uint8Array, encodeURIComponent, Object });
const p = window.p13n.init({ siteKey: "pk test", batchMax: 20 });
const sent = [];
for (let i = 0; i < 25; i++) sent.push(p.track("view", { item: "sku-" + i }));
p.flush();
console.log(JSON.stringify({ sent, beacons, stats: p.stats() }));
"""


def run_snippet(gpc: bool = False, cookie: str = "") -> dict:
    assert NODE, "node is needed for the browser snippet test (tests/edge/pyodide uses it too)"
    out = subprocess.run(
        [NODE, "-e", HARNESS, sdk_source().decode(), "1" if gpc else "0", cookie],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


async def test_the_origin_serves_the_snippet_with_an_etag(client) -> None:
    r = await client.get("/v1/sdk/p13n.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert b"sendBeacon" in r.content
    again = await client.get("/v1/sdk/p13n.js", headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304


async def test_beacons_batch_events_with_client_ids_and_the_collector_accepts_them(
    client, redis_url
) -> None:
    got = run_snippet()
    assert all(got["sent"]) and [len(json.loads(b["body"])["events"]) for b in got["beacons"]] == [
        20,
        5,
    ]
    assert got["beacons"][0]["url"] == "/v1/events?site_key=pk%20test"
    events = [e for b in got["beacons"] for e in json.loads(b["body"])["events"]]
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == 25 and all(len(i) == 32 for i in ids)
    assert all("user" not in e for e in events)  # the HttpOnly cookie fills it in

    sid = new_shopper_id()
    trace = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    for b in got["beacons"]:
        r = await client.post(
            "/v1/events", content=b["body"],
            headers={"content-type": "text/plain;charset=UTF-8", "traceparent": trace,
                     "cookie": f"p13n_sid={sid}"},
        )  # fmt: skip
        assert r.status_code == 202 and r.json()["rejected"] == 0, r.text
    rc = connect_sync(redis_url)
    try:
        stream = Keys().stream(partition_of(sid, 2))
        stored = [msgpack.unpackb(f[b"e"]) for _, f in rc.xrange(stream)]
    finally:
        rc.close()
    assert sorted(e["event_id"] for e in stored) == sorted(ids)
    assert {e["user"] for e in stored} == {sid} and {e["traceparent"] for e in stored} == {trace}
    metrics = (await client.get("/metrics")).text
    assert "p13n_origin_event_ingest_seconds_count 25.0" in metrics
    assert 'p13n_origin_events_total{outcome="accepted"} 25.0' in metrics


def test_nothing_is_sent_when_the_shopper_opted_out() -> None:
    for gpc, cookie in ((True, ""), (False, "a=1; p13n_optout=1")):
        got = run_snippet(gpc=gpc, cookie=cookie)
        assert got["beacons"] == [] and not any(got["sent"])
    assert run_snippet(cookie="p13n_optout=0")["beacons"]
