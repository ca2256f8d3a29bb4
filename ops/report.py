"""The demo's summary: what the edge, the pipeline and the experiment did, and its verdict.

Client-side figures come from the simulation; the rest from the parts themselves: the
processor's counters in Redis (applied, duplicate, late, dead-lettered per partition), the
DLQ, the processor's event-to-feature histogram, and the experiment's results API. Those are
cumulative over the stack's life, so a run reads them before it starts and reports the
difference (``Observed.since``): a stack that already ran does not mix its past into this
run's figures. Reads retry transient answers; a part that cannot be read fails the verdict
with the reason, and the client-side summary is printed all the same.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import redis

from ops.simulate import EXPERIMENT, Run
from ops.stack import StackInfo
from ops.traffic import MAX_ATTEMPTS, RETRY_STATUSES, retry_after_s
from segmenter.schema import DEFAULT_PARTITIONS, Keys

__all__ = [
    "Observed",
    "Verdict",
    "histogram_quantile",
    "judge",
    "observe",
    "percentile",
    "purge_ms",
    "summarize",
    "verdict",
]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def histogram_buckets(text: str, name: str) -> dict[float, float]:
    """A Prometheus histogram's cumulative buckets {upper bound: count}, summed over label
    sets."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith(name + "_bucket{"):
            continue
        le = line.split('le="', 1)[1].split('"', 1)[0]
        bound = math.inf if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def histogram_quantile(text: str, name: str, q: float) -> float | None:
    """The q-quantile of a Prometheus histogram (cumulative buckets, linear inside a
    bucket, as PromQL's ``histogram_quantile``), summed over label sets."""
    return bucket_quantile(histogram_buckets(text, name), q)


def bucket_quantile(buckets: dict[float, float], q: float) -> float | None:
    """The q-quantile of cumulative ``buckets`` (None when they counted nothing)."""
    if not buckets or buckets.get(math.inf, 0) == 0:
        return None
    total, prev_bound, prev_count = buckets[math.inf], 0.0, 0.0
    for bound in sorted(buckets):
        count = buckets[bound]
        if count >= q * total:
            if math.isinf(bound):
                return prev_bound
            span = count - prev_count
            frac = (q * total - prev_count) / span if span else 0.0
            return prev_bound + (bound - prev_bound) * frac
        prev_bound, prev_count = bound, count
    return prev_bound


@dataclass
class Verdict:
    """The printed summary, the last line, and whether the demo passed."""

    lines: list[str]
    last_line: str
    ok: bool


def _pipeline_counts(redis_url: str) -> dict[str, int]:
    keys, r = Keys(), redis.Redis.from_url(redis_url)
    try:
        out = {"applied": 0, "duplicate": 0, "late": 0, "dead": 0}
        for p in range(DEFAULT_PARTITIONS):
            meta = r.hgetall(keys.partition_meta(p))
            for k in out:
                out[k] += int(meta.get(k.encode(), 0))
        out["dlq"] = int(r.xlen(keys.dlq))
        return out
    finally:
        r.close()


def _get_json(url: str, token: str) -> dict[str, Any]:
    """GET ``url``'s JSON, retrying 503/429 after ``Retry-After`` like the simulator does."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        r = httpx.get(url, headers={"authorization": f"Bearer {token}"}, timeout=10)
        if r.status_code not in RETRY_STATUSES or attempt == MAX_ATTEMPTS:
            break
        time.sleep(retry_after_s(r))
    r.raise_for_status()
    doc: dict[str, Any] = r.json()
    return doc


def _results(info: StackInfo) -> dict[str, Any]:
    url = f"{info.origin_url}/v1/admin/experiments/{EXPERIMENT}/results"
    return _get_json(url, info.tokens["experimenter"])


def purge_ms(purges: dict[str, float], kind: str = "hard purge") -> float | None:
    """Ms until the first purge of ``kind`` ("hard purge" or "stock-out") was gone from the
    edge; None when there was none or it was never seen (the simulator's inf)."""
    for name, ms in purges.items():
        if name.startswith(kind + " "):
            return None if math.isinf(ms) else ms
    return None


def judge(
    counts: dict[str, int],
    exposures: list[int],
    purges: dict[str, float],
    fresh_s: float | None,
    malformed_sent: int,
) -> list[str]:
    """Why the demo failed (empty: ``demo ok``). The purge that counts is the hard purge
    (a stock-out's own purge does not stand in for it); a missing freshness figure fails."""
    why = []
    if counts["applied"] == 0:
        why.append("no events applied")
    if fresh_s is None:
        why.append("no event-to-feature freshness measured")
    if len(exposures) < 2 or min(exposures) == 0:
        why.append(f"an arm has no exposures ({exposures})")
    if purge_ms(purges) is None:
        why.append("the hard purge was never seen at the edge")
    if counts["dlq"] != malformed_sent:
        why.append(f"dlq={counts['dlq']} but {malformed_sent} malformed were injected")
    return why


def _figure(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


FRESHNESS = "p13n_segmenter_event_to_feature_seconds"


@dataclass
class Observed:
    """What the parts themselves report: pipeline counters, the processor's event-to-feature
    p99 (seconds) and the experiment's results document; ``buckets`` is the freshness
    histogram the p99 comes from (kept so two readings can be subtracted)."""

    counts: dict[str, int]
    fresh_s: float | None
    results: dict[str, Any]
    buckets: dict[float, float] = field(default_factory=dict)

    def since(self, before: Observed | None) -> Observed:
        """This reading minus ``before`` (taken when the run started): one run's figures.
        A counter that went down (a part restarted, a ``dlq drop``) counts from zero."""
        if before is None:
            return self
        counts = {k: _delta(v, before.counts.get(k, 0)) for k, v in self.counts.items()}
        buckets = {b: _delta(v, before.buckets.get(b, 0.0)) for b, v in self.buckets.items()}
        fresh_s = bucket_quantile(buckets, 0.99) if buckets else self.fresh_s
        old = {v["variant"]: v for v in before.results.get("variants", [])}
        variants = []
        for v in self.results.get("variants", []):
            was = old.get(v["variant"], {})
            exp = _delta(v.get("exposures", 0), was.get("exposures", 0))
            conv = _delta(v.get("conversions", 0), was.get("conversions", 0))
            variants.append({**v, "exposures": exp, "conversions": conv,
                             "conversion_rate": conv / exp if exp else 0.0})  # fmt: skip
        results = {**self.results, "variants": variants}
        return replace(self, counts=counts, fresh_s=fresh_s, results=results, buckets=buckets)


def _delta(now: float, then: float) -> Any:
    return now - then if now >= then else now


def observe(info: StackInfo) -> Observed:
    """Read the parts' own figures (Redis counters, processor metrics, the results API)."""
    buckets: dict[float, float] = {}
    if info.processor_metrics_url:
        text = httpx.get(info.processor_metrics_url + "/metrics", timeout=5).text
        buckets = histogram_buckets(text, FRESHNESS)
    fresh_s = bucket_quantile(buckets, 0.99)
    return Observed(_pipeline_counts(info.redis_url), fresh_s, _results(info), buckets)


def _ms_line(label: str, n: int, ms: list[float]) -> str:
    return (
        f"  {label:<24} {n:>6}  p50={percentile(ms, 0.5):6.1f} ms  "
        f"p95={percentile(ms, 0.95):6.1f} ms  p99={percentile(ms, 0.99):6.1f} ms"
    )


def edge_lines(run: Run, hit_ratio: float) -> list[str]:
    """Per tier answers and latencies, the hit ratio and the origin's own latency."""
    lines = ["", "== edge answers (bots included)"]
    lines += [_ms_line(tier, n, run.edge_ms[tier]) for tier, n in run.tiers.most_common()]
    lines.append(
        f"  hit ratio (hit + stale): {hit_ratio:.2%} of {run.edge_answers}; "
        f"bot requests {run.bot_requests}; errors {dict(run.errors) or 'none'}"
    )
    retried = ", ".join(f"{n} after {status}" for status, n in sorted(run.retries.items()))
    lines.append(
        f"  retried (Retry-After honoured): {retried or 'none'}; visits cancelled at the "
        f"end: {run.cancelled}"
    )
    lines.append(
        f"  origin /v1/recommendations: n={len(run.origin_ms)} "
        f"p50={percentile(run.origin_ms, 0.5):.1f} ms "
        f"p99={percentile(run.origin_ms, 0.99):.1f} ms"
    )
    return lines


def pipeline_lines(run: Run, seen: Observed) -> list[str]:
    """Events sent and what the processor made of them; freshness."""
    c = seen.counts
    fresh = f"{seen.fresh_s * 1000:.0f} ms" if seen.fresh_s is not None else "n/a"
    return [
        "== pipeline",
        f"  events sent {run.events_sent} (malformed injected {run.malformed_sent}); "
        f"applied {c['applied']}, duplicate {c['duplicate']}, "
        f"late {c['late']}, dead-lettered {c['dlq']}",
        f"  event-to-feature freshness p99: {fresh}",
    ]


def purge_lines(purges: dict[str, float]) -> list[str]:
    """How long each purge took to disappear from the sampled edge answers."""
    rows = [
        f"  {name}: {'never seen' if math.isinf(ms) else f'{ms:.0f} ms'}"
        for name, ms in purges.items()
    ]
    return ["== purges (admin call -> gone from every sampled edge answer)", *(rows or ["  none"])]


def experiment_lines(results: dict[str, Any]) -> list[str]:
    """Per variant exposures, conversions and lift; the sample-ratio check."""
    lines = [
        f"== experiment {EXPERIMENT} (bots excluded; exposures and conversions of this run, "
        "lift and the sample-ratio check over the experiment's life)"
    ]
    for v in results.get("variants", []):
        lift = v.get("lift") or {}
        ci = lift.get("ci95") or lift.get("ci") or []
        lift_txt = f" lift {lift.get('relative', 0):+.1%} CI95 {ci}" if lift else ""
        lines.append(
            f"  {v['variant']:<8} exposures {v['exposures']:>5} conversions "
            f"{v['conversions']:>4} rate {v.get('conversion_rate') or 0:.3f}{lift_txt}"
        )
    srm = results.get("srm", {})
    lines.append(
        f"  sample-ratio check: p={srm.get('p_value')} "
        f"{'MISMATCH' if srm.get('mismatch') else 'ok'}"
    )
    return lines


def figures(run: Run, seen: Observed, hit_ratio: float) -> str:
    """The last line's ``key=value`` figures."""
    all_ms = [ms for v in run.edge_ms.values() for ms in v]
    fresh_ms = None if seen.fresh_s is None else seen.fresh_s * 1000
    return (
        f"edge_hit_ratio={hit_ratio:.3f} edge_p99_ms={percentile(all_ms, 0.99):.1f} "
        f"origin_p99_ms={percentile(run.origin_ms, 0.99):.1f} "
        f"freshness_p99_ms={_figure(fresh_ms, '.0f')} "
        f"purge_ms={_figure(purge_ms(run.purges), '.0f')} dlq={seen.counts['dlq']}"
    )


def verdict(run: Run, seen: Observed) -> Verdict:
    """The summary and ``demo ok`` or ``demo FAILED <why>`` from the figures (pure)."""
    hits = run.tiers["hit"] + run.tiers["stale"]
    hit_ratio = hits / run.edge_answers if run.edge_answers else 0.0
    lines = edge_lines(run, hit_ratio) + pipeline_lines(run, seen)
    lines += purge_lines(run.purges) + experiment_lines(seen.results)
    if run.load is not None:
        lines += run.load.lines()
    exposures = [v["exposures"] for v in seen.results.get("variants", [])]
    why = judge(seen.counts, exposures, run.purges, seen.fresh_s, run.malformed_sent)
    if run.interrupted:
        why.insert(0, f"the run ended early ({run.interrupted})")
    tail = figures(run, seen, hit_ratio)
    if run.load is not None:
        tail += f" achieved_per_s={run.load.achieved_per_s:.1f} sim_cpu={run.load.cpu_share:.2f}"
        tail += f" bottleneck={'machine' if run.load.machine_bound else 'none'}"
    last = f"demo ok {tail}" if not why else f"demo FAILED {'; '.join(why)} {tail}"
    return Verdict(lines, last, not why)


def baseline(info: StackInfo) -> Observed | None:
    """The parts' figures before a run (None when they cannot be read: the run's figures
    are then the parts' totals, and the summary says so)."""
    try:
        return observe(info)
    except (httpx.HTTPError, redis.RedisError, OSError, ValueError, KeyError):
        return None


def summarize(run: Run, info: StackInfo, before: Observed | None = None) -> Verdict:
    """Gather every figure (this run's: minus ``before``) and decide ``demo ok`` or ``demo
    FAILED <why>``. A part that cannot be read fails the verdict, the client-side figures
    still printed."""
    try:
        seen = observe(info).since(before)
    except (httpx.HTTPError, redis.RedisError, OSError, ValueError, KeyError) as exc:
        empty = Observed({"applied": 0, "duplicate": 0, "late": 0, "dead": 0, "dlq": 0}, None, {})
        out = verdict(run, empty)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return Verdict(out.lines, f"demo FAILED could not read the parts' figures: {first}", False)
    out = verdict(run, seen)
    if before is None:
        out.lines.append("  (figures since the stack started: no reading before the run)")
    return out
