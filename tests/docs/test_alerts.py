"""The alert rules: valid YAML, every metric they name exists in the code, every alert links to
an existing section of the runbook, and the runbook's SLI table names real metrics."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from origin.metrics import DEGRADED_REASONS
from origin.metrics import Metrics as OriginMetrics
from segmenter.metrics import Metrics as ProcessorMetrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "alerts" / "p13n-rules.yml"
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
METRIC_RE = re.compile(r"\bp13n_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def code_metric_names() -> set[str]:
    """Every metric name registered in the packages (quoted ``p13n_…`` string literals)."""
    names: set[str] = set()
    for package in ("origin", "edge", "segmenter"):
        for path in (ROOT / package).rglob("*.py"):
            names.update(re.findall(r"[\"'](p13n_[a-z0-9_]+)[\"']", path.read_text()))
    return names


def base_name(metric: str) -> str:
    for suffix in SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_every_metric_in_the_rules_exists_in_the_code() -> None:
    known = code_metric_names()
    named = {base_name(m) for r in rules() for m in METRIC_RE.findall(r["expr"])}
    assert named, "the rules name no metric"
    assert named - known == set()


def test_recorded_series_used_by_alerts_are_defined() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    used = {m for r in rules() if "alert" in r for m in re.findall(r"p13n:[a-z0-9_:]+", r["expr"])}
    assert used and used <= recorded


def test_every_alert_links_to_a_runbook_section() -> None:
    sections = anchors(RUNBOOK.read_text())
    alerts = [r for r in rules() if "alert" in r]
    assert len(alerts) >= 8
    for r in alerts:
        url = r["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/RUNBOOK.md" and anchor in sections, (r["alert"], url)
        assert r["annotations"]["summary"]


def test_the_runbook_names_only_real_metrics_and_links_real_sections() -> None:
    text = RUNBOOK.read_text()
    named = {base_name(m) for m in METRIC_RE.findall(text)}
    assert named - code_metric_names() == set()
    for anchor in re.findall(r"\]\(#([a-z0-9-]+)\)", text):
        assert anchor in anchors(text)


def test_the_anchor_rule_matches_githubs() -> None:
    assert anchors("## Incident: consumer-lag spike\n") == {"incident-consumer-lag-spike"}


def test_every_part_has_an_alert_that_fires_when_it_is_gone() -> None:
    exprs = [r["expr"] for r in rules() if "alert" in r]
    for job in ("p13n-processor", "p13n-origin", "p13n-edge"):
        assert f'absent(up{{job="{job}"}} == 1)' in exprs, job
    unowned = next(r["expr"] for r in rules() if r.get("alert") == "P13nPartitionUnowned")
    assert "or vector(0)" in unowned  # no processor series at all is 0 partitions owned


def _scrape(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_counters_the_alerts_rate_are_scraped_at_zero_from_the_start() -> None:
    processor = _scrape(ProcessorMetrics().registry)
    assert 'p13n_segmenter_rejected_total{field="ts"} 0.0' in processor
    assert 'p13n_segmenter_rejected_total{field="$"} 0.0' in processor
    origin = OriginMetrics().render().decode()
    for reason in DEGRADED_REASONS:
        assert f'p13n_origin_degraded_answers_total{{reason="{reason}"}} 0.0' in origin


def test_the_lag_gauge_drops_partitions_the_process_no_longer_owns() -> None:
    m = ProcessorMetrics()
    m.set_lag({0: 5, 1: 7})
    m.set_lag({1: 3})  # partition 0 moved to another processor
    text = _scrape(m.registry)
    assert 'p13n_segmenter_consumer_lag{partition="0"}' not in text
    assert 'p13n_segmenter_consumer_lag{partition="1"} 3.0' in text
