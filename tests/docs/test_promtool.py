"""The alert rules evaluated by real Prometheus: ``promtool test rules`` runs the unit tests of
docs/alerts/p13n-rules.test.yml, where every alert has series that fire it and series that
must leave it silent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.docs.prometheus import binary

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docs" / "alerts"
RULES = ALERTS / "p13n-rules.yml"
RULE_TESTS = ALERTS / "p13n-rules.test.yml"


def promtool(*args: str, cwd: Path = ALERTS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_the_rules_are_valid_prometheus_rules() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_of_every_rule_pass() -> None:
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    alerts = {
        r["alert"]
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    cases = [
        case
        for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in group.get("alert_rule_test", [])
    ]
    fired = {c["alertname"] for c in cases if c["exp_alerts"]}
    silent = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert alerts, "no alert rules found"
    assert alerts - fired == set(), "alerts no test fires"
    assert alerts - silent == set(), "alerts no test keeps silent"


def test_a_changed_threshold_fails_the_unit_tests(tmp_path: Path) -> None:
    # The unit tests evaluate the rules: a rule that no longer fires where it should is caught.
    rules = RULES.read_text()
    assert "sum(p13n_segmenter_consumer_lag) > 20000" in rules
    (tmp_path / RULES.name).write_text(rules.replace("lag) > 20000", "lag) > 40000"))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    done = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert done.returncode != 0
    assert "alertname: P13nConsumerLagHigh" in done.stdout + done.stderr
