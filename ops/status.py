"""``p13n status``, ``p13n lag`` and ``p13n probe``: is every part up, how far behind, how fast.

status   origin /healthz + /readyz, edge admin /healthz, Redis PING, processor leases,
         consumer lag, DLQ depth, edge hit ratio (from the edge's /metrics)
lag      per partition: owner, lease, entries behind, applied offset, watermark
         (reads through ``segmenter.schema``: the key layout, the group, ``group_backlog``)
probe    one synthetic rail request through the edge as a fresh anonymous shopper
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ops.costs import DEFAULT_PRICE_PER_GB, costs_text, edge_costs, origin_edge_bytes
from ops.helptext import plural
from ops.target import OpsError, Target, UsageError, reason
from segmenter.schema import group_backlog

__all__ = ["PROBE_USER_AGENT", "edge_hit_ratio", "partition_lag", "probe", "status"]

# Edge tiers that answered from the edge's own store (a hit, fresh or stale).
HIT_TIERS = frozenset({"hit", "stale"})
COUNTED_TIERS = frozenset({"hit", "stale", "miss", "default", "origin", "error"})


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v or "")


def partition_lag(target: Target) -> list[dict[str, Any]]:
    """One row per partition: owner, lease left, ``behind`` (the segmenter's
    ``group_backlog``), applied offset and watermark (max event time minus the lateness)."""
    keys, now = target.keys, _now_ms()
    rows = []
    with target.redis() as r:
        for p in range(target.partitions):
            meta = {_text(k): _text(v) for k, v in r.hgetall(keys.partition_meta(p)).items()}
            groups = r.xinfo_groups(keys.stream(p)) if r.exists(keys.stream(p)) else []
            until = int(meta.get("lease_until_ms") or 0)
            max_ts = int(meta.get("max_ts") or 0)
            rows.append(
                {
                    "partition": p,
                    "owner": meta.get("owner") if until > now else None,
                    "lease_left_ms": max(0, until - now),
                    "behind": group_backlog(groups)["behind"],
                    "offset": meta.get("offset") or None,
                    "watermark_ms": max_ts - target.allowed_lateness_ms if max_ts else None,
                    "applied": int(meta.get("applied") or 0),
                }
            )
    return rows


def lag_text(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'part':>4}  {'owner':<28} {'behind':>8}  {'offset':<18} watermark"]
    for row in rows:
        wm = row["watermark_ms"]
        wm_text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wm / 1000)) if wm else "-"
        owner = row["owner"] or "(no lease)"
        lines.append(
            f"{row['partition']:>4}  {owner:<28} {row['behind']:>8}  "
            f"{row['offset'] or '-':<18} {wm_text}"
        )
    lines.append(f"total behind {sum(r['behind'] for r in rows)} (lag)")
    return "\n".join(lines)


def edge_hit_ratio(metrics_text: str) -> float | None:
    """(hit + stale) / answers over every counted tier, from the edge's exposition."""
    hits = total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "p13n_edge_answers":
            continue
        for s in family.samples:
            tier = s.labels.get("tier", "")
            if s.name.endswith("_total") and tier in COUNTED_TIERS:
                total += s.value
                hits += s.value if tier in HIT_TIERS else 0.0
    return round(hits / total, 4) if total else None


def _http_ok(target: Target, url: str) -> tuple[bool, str]:
    try:
        resp = target.request("GET", url)
    except OpsError as exc:
        return False, str(exc)
    return resp.status_code == 200, f"{resp.status_code}"


def _check_origin(target: Target) -> dict[str, Any]:
    base = target.need("origin_url").rstrip("/")
    live, live_why = _http_ok(target, base + "/healthz")
    ready, ready_why = _http_ok(target, base + "/readyz") if live else (False, "-")
    return {"up": live and ready, "healthz": live_why, "readyz": ready_why, "url": base}


def _check_edge(target: Target, price: float) -> dict[str, Any]:
    base = target.need("edge_admin_url").rstrip("/")
    up, why = _http_ok(target, base + "/healthz")
    ratio = costs = None
    if up:
        resp = target.request("GET", base + "/metrics")
        if resp.status_code == 200:
            ratio = edge_hit_ratio(resp.text)
            costs = edge_costs(resp.text, time.time(), price)
    return {"up": up, "healthz": why, "hit_ratio": ratio, "costs": costs, "url": base}


def _origin_edge_bytes(target: Target) -> int | None:
    try:
        resp = target.request("GET", target.need("origin_url").rstrip("/") + "/metrics")
    except OpsError:
        return None
    return origin_edge_bytes(resp.text) if resp.status_code == 200 else None


def _check_store(target: Target) -> dict[str, Any]:
    try:
        with target.redis() as r:
            r.ping()
            depth = int(r.xlen(target.keys.dlq))
    except UsageError:
        raise  # a malformed --redis-url is the command line's fault: exit 2
    except OpsError as exc:
        return {"redis": {"up": False, "error": str(exc)}}
    rows = partition_lag(target)
    owners = sorted({r["owner"] for r in rows if r["owner"]})
    leased = sum(1 for r in rows if r["owner"])
    return {
        "redis": {"up": True},
        "processor": {
            "up": leased > 0,
            "owners": owners,
            "partitions_leased": leased,
            "partitions": len(rows),
        },
        "behind": sum(r["behind"] for r in rows),
        "dlq_depth": depth,
    }


def status(
    target: Target, price_per_gb: float = DEFAULT_PRICE_PER_GB
) -> tuple[bool, dict[str, Any]]:
    """Every part's health and the cost figures; the first item says whether all are up.
    A stack stopped cleanly is not probed: it is said to be stopped."""
    if target.stopped_at_ms is not None:
        return False, {"ok": False, "stopped": True, "stack": target.stack_dir,
                       "stopped_at_ms": target.stopped_at_ms}  # fmt: skip
    doc: dict[str, Any] = {
        "origin": _check_origin(target),
        "edge": _check_edge(target, price_per_gb),
    }
    if doc["origin"]["up"]:
        doc["origin"]["edge_bytes_served"] = _origin_edge_bytes(target)
    doc.update(_check_store(target))
    doc.setdefault("processor", {"up": False, "error": "Redis is down"})
    if target.children:
        doc["supervisor"] = target.children  # restarts by `p13n up` (ops.supervisor)
    parts = ("origin", "edge", "redis", "processor")
    doc["ok"] = all(doc[p]["up"] for p in parts)
    return doc["ok"], doc


def status_text(doc: dict[str, Any]) -> str:
    if doc.get("stopped"):
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(doc["stopped_at_ms"] / 1000))
        return (
            f"stack {doc['stack']} is stopped (since {when}); `p13n up --dir {doc['stack']}` "
            "starts it again with its tokens, keys and data (and its ports, when free)"
        )

    def mark(part: str) -> str:
        return "up  " if doc[part]["up"] else "DOWN"

    o, e, p = doc["origin"], doc["edge"], doc["processor"]
    ratio = "-" if e.get("hit_ratio") is None else f"{e['hit_ratio']:.1%}"
    lines = [
        f"origin     {mark('origin')}  healthz {o['healthz']}, readyz {o['readyz']}  {o['url']}",
        f"edge       {mark('edge')}  healthz {e['healthz']}, hit ratio {ratio}  {e['url']}",
        f"redis      {mark('redis')}  {doc['redis'].get('error', 'PING ok')}",
    ]
    if "owners" in p:
        detail = f"{p['partitions_leased']}/{p['partitions']} partitions leased by "
        detail += ", ".join(p["owners"]) or "nobody"
    else:
        detail = p.get("error", "")
    lines.append(f"processor  {mark('processor')}  {detail}")
    if "behind" in doc:
        lines.append(f"behind {doc['behind']} (lag), dlq depth {doc['dlq_depth']}")
    if "supervisor" in doc:
        lines.append(supervisor_text(doc["supervisor"]))
    if e["up"]:
        lines.append(costs_text(e.get("costs"), o.get("edge_bytes_served")))
    lines.append("all parts up" if doc["ok"] else "SOME PARTS ARE DOWN")
    return "\n".join(lines)


def supervisor_text(children: dict[str, dict[str, Any]]) -> str:
    """``p13n up``'s restarts: "restarts   processor 1 (killed by SIGKILL at …)", or none."""
    parts = []
    for name, c in children.items():
        if not c.get("restarts") and c.get("restarting_in_s") is None:
            continue
        pending = c.get("restarting_in_s")
        now = f", restarting in {pending:.1f} s" if pending is not None else ""
        parts.append(f"{name} {c.get('restarts', 0)} (last {c.get('last_exit') or '?'}{now})")
    return "restarts   " + ("; ".join(parts) or "none")


def _tier(cache_status: str) -> str:
    for part in cache_status.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "detail":
            return value
    return "unknown"


# The probe says it is a bot, so the edge classifies it as one (edge.request's bot pattern)
# and its requests are never counted as experiment exposures: `p13n probe` every minute
# must not skew results.
PROBE_USER_AGENT = "p13n-probe/1 (synthetic monitoring bot)"


def probe(target: Target, route: str) -> tuple[bool, dict[str, Any]]:
    """One rail request as a new anonymous shopper (no cookies), traced with a fresh id,
    identified as a synthetic monitoring bot."""
    url = target.need("edge_url").rstrip("/") + f"/p13n/v1/rail/{route}"
    trace = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    started = time.perf_counter()
    try:
        resp = httpx.get(
            url, headers={"traceparent": trace, "user-agent": PROBE_USER_AGENT}, timeout=10.0
        )
    except httpx.HTTPError as exc:
        raise OpsError(f"{url} is not reachable ({reason(exc)})") from exc
    ms = (time.perf_counter() - started) * 1000
    items: int | None = None
    try:
        body = resp.json()
        items = len(body.get("items", [])) if isinstance(body, dict) else None
    except ValueError:
        pass
    status_header = resp.headers.get("cache-status", "")
    ok = resp.status_code == 200 and items is not None
    doc = {
        "ok": ok,
        "url": url,
        "status": resp.status_code,
        "latency_ms": round(ms, 2),
        "tier": _tier(status_header) if status_header else "none",
        "cache_status": status_header,
        "items": items,
        "traceparent": trace,
    }
    return ok, doc


def probe_text(doc: dict[str, Any]) -> str:
    verdict = "ok" if doc["ok"] else "FAILED"
    return (
        f"probe {verdict}: {doc['status']} in {doc['latency_ms']:.1f} ms, tier {doc['tier']}, "
        f"{plural(doc['items'], 'item')} ({doc['url']})"
    )
