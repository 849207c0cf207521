"""The Prometheus rules and config of deploy/observability: promtool checks them and runs their
unit tests; every alert has a firing and a non-firing case and a runbook section."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi import APIRouter
from fastapi.routing import APIRoute

from devtools.observability import stale_files
from devtools.slos import OBJECTIVES, slos_markdown_table
from frontend_service import pages as frontend_pages
from tasks_service import routes as tasks_routes
from testkit import need
from thoughts_service import routes as thoughts_routes
from users_service import routes as users_routes

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


RULE_TESTS = sorted(path.name for path in (PROMETHEUS_DIR / "tests").glob("*.yml"))


@pytest.mark.parametrize("tests_file", RULE_TESTS)
def test_rule_unit_tests_pass(tests_file: str) -> None:
    assert "SUCCESS" in promtool("test", "rules", f"tests/{tests_file}")


@pytest.mark.parametrize("alert", alert_names())
def test_every_alert_has_a_firing_and_a_quiet_case_and_a_runbook_section(alert: str) -> None:
    tests = [
        test
        for name in RULE_TESTS
        for test in yaml.safe_load((PROMETHEUS_DIR / "tests" / name).read_text())["tests"]
    ]
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


def test_the_generated_files_are_what_the_code_generates() -> None:
    # slo.yml, the PrometheusRule and the dashboards come from devtools (slos, dashboards).
    stale = [str(path.relative_to(PROMETHEUS_DIR.parents[2])) for path in stale_files()]
    assert not stale, f"run `python -m devtools observability generate`: {stale}"
    assert slos_markdown_table() in (PROMETHEUS_DIR.parent / "SLOS.md").read_text()


def _routes(*routers: APIRouter) -> list[tuple[str, str]]:
    return [
        (route.path, method)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    ]


def test_every_public_route_has_an_objective() -> None:
    # The services' public routers (admin routers and the kit's probes are not user traffic);
    # the tasks service's welcome page is registered on its own router at start.
    routes = {
        "thoughts": _routes(thoughts_routes.api),
        "users": _routes(users_routes.api),
        "frontend": _routes(frontend_pages.router),
        "tasks": [*_routes(tasks_routes.api), ("/", "GET")],
    }
    for job, paths in routes.items():
        assert paths, job
        covered = {
            (route, method)
            for objective in OBJECTIVES
            if objective.job == job
            for route in objective.routes
            for method in objective.methods.split("|")
        }
        missing = [f"{method} {path}" for path, method in paths if (path, method) not in covered]
        assert not missing, f"{job}: public routes without an objective: {missing}"


@pytest.mark.parametrize("alert", alert_names())
def test_every_alert_has_a_summary_a_description_with_numbers_and_a_runbook_link(
    alert: str,
) -> None:
    groups = yaml.safe_load((PROMETHEUS_DIR / "rules" / "alerts.yml").read_text())["groups"]
    rule = next(r for g in groups for r in g["rules"] if r.get("alert") == alert)
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    # The measured value, or the thresholds and durations it was compared with.
    assert "$value" in annotations["description"] or any(
        c.isdigit() for c in annotations["description"]
    )
    assert annotations["runbook_url"] == f"deploy/observability/RUNBOOK.md#{alert.lower()}"
    assert rule["labels"]["severity"] in {"page", "ticket"}
