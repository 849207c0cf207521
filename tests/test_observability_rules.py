"""The Prometheus rules and config of deploy/observability: promtool checks them and runs their
unit tests; every alert has a firing and a non-firing case and a runbook section."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from servicekit.testing import need

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / "deploy" / "observability" / "prometheus"
RUNBOOK = PROMETHEUS_DIR.parent / "RUNBOOK.md"


def promtool(*args: str) -> str:
    binary = shutil.which("promtool")
    if binary is None:
        need("promtool is not installed (Debian package prometheus)")
    result = subprocess.run(
        [str(binary), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def alert_names() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "rules" / "alerts.yml").read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_config_and_rules_pass_promtool_check() -> None:
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")


def test_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", "tests/alerts_test.yml")


@pytest.mark.parametrize("alert", alert_names())
def test_every_alert_has_a_firing_and_a_quiet_case_and_a_runbook_section(alert: str) -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "tests" / "alerts_test.yml").read_text())["tests"]
    cases = [
        case
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert
    ]
    assert any(case["exp_alerts"] for case in cases), f"{alert}: no case where it fires"
    assert any(not case["exp_alerts"] for case in cases), f"{alert}: no quiet case"
    assert f"## {alert}" in RUNBOOK.read_text(), f"{alert}: no section in RUNBOOK.md"


def test_the_kubernetes_prometheus_rule_holds_the_same_rules() -> None:
    component = PROMETHEUS_DIR.parents[1] / "k8s" / "components" / "monitoring"
    rule = yaml.safe_load((component / "prometheusrule.yaml").read_text())
    groups = [
        group
        for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == groups
