"""The shipped alert rules: valid for Prometheus, and each alert fires when it should
(and only then), by ``promtool test rules`` over deploy/prometheus/alerts_test.yml."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
ALERTS = {
    "RateLimitQuotaNearlyExhausted",
    "RateLimitSustained429s",
    "RateLimitRetryBudgetExhausted",
    "RateLimitThrottleWaitLong",
    "RateLimitTokenRefreshFailing",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `python3 dev.py test` installs Debian's prometheus")
    return path


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_cover_every_alert_firing_and_not() -> None:
    tests = yaml.safe_load((RULES / "alerts_test.yml").read_text())
    fired: set[str] = set()
    quiet: set[str] = set()
    for group in tests["tests"]:
        for case in group["alert_rule_test"]:
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    assert fired == ALERTS
    assert quiet == ALERTS
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=RULES,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_use_only_metrics_the_library_exports() -> None:
    """Every metric an alert reads is one PrometheusMetrics registers."""
    from ratelimited_client import PrometheusMetrics

    exported = PrometheusMetrics().render().decode()
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        for name in re.findall(r"ratelimited_client_[a-z_]+", rule["expr"]):
            family = re.sub(r"_(bucket|total)$", "", name)
            assert f"# TYPE {family}" in exported or f"# TYPE {name}" in exported, name
