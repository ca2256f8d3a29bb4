"""The alert rules: valid YAML, every metric they name exists in the code, every alert links to
an existing section of the runbook, and the runbook's SLI table names real metrics."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

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
