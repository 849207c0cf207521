"""Every dashboard panel's and every rule's PromQL, run by a real Prometheus against the real
services, and an alert firing in it.

A Prometheus (Debian's /usr/bin/prometheus, a free port, its own temporary storage) scrapes the
four service processes of the observed system every second and loads the same rule files as
compose and Kubernetes. After a realistic session of traffic it must (1) accept every query of
every dashboard and every rule (Prometheus's query API answers `bad_data` to one that does not
parse), (2) find every metric name those queries read in what the services export (their own
/metrics, read here) or in what the rules record, and (3) fire TargetDown for a target that
does not answer, with the rule's own expression and annotations.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devtools.dashboards import DASHBOARDS, dashboard_json, panel_queries
from devtools.observability import RULES_DIR
from devtools.observed import ObservedSystem, run_realistic_session
from devtools.promql import metric_names
from testkit import free_port, need, postgres_available

# Grafana's variables, as Grafana would fill them at a 1 s scrape interval and a short range.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m"}
# Read by rules but exported by someone else: kubelet's volume statistics, which
# kube-prometheus-stack scrapes (PostgresVolumeFilling), and Prometheus's own `up`.
NOT_FROM_THE_SERVICES = {
    "up": "Prometheus, for every target",
    "kubelet_volume_stats_available_bytes": "kubelet (Kubernetes)",
    "kubelet_volume_stats_capacity_bytes": "kubelet (Kubernetes)",
}
SCRAPED = {
    "thoughts": "thoughts",
    "users": "users",
    "frontend": "frontend_internal",
    "tasks": "tasks",
}


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        assert body["status"] == "success", (params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(self, what: str, check: Any, timeout: float = 45.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"Prometheus never showed {what}:\n{self.log.read_text()[-3000:]}")


def _rules_with_a_quick_target_down() -> dict[str, Any]:
    """The real TargetDown rule (expression, labels, annotations) with `for: 2s` instead of two
    minutes, in a group of its own: the alert must fire within a test's time."""
    alerts = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    rule = next(r for g in alerts["groups"] for r in g["rules"] if r.get("alert") == "TargetDown")
    return {"groups": [{"name": "quick-target-down", "rules": [{**rule, "for": "2s"}]}]}


@pytest.fixture(scope="module")
def prometheus(
    observed_system: ObservedSystem, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        need("prometheus is not installed (Debian package prometheus)")
    reason = postgres_available()
    if reason:  # thoughts then runs on SQLite, which has no pool waiting to report
        need(reason)
    root = tmp_path_factory.mktemp("prometheus")
    (root / "quick.yml").write_text(yaml.safe_dump(_rules_with_a_quick_target_down()))
    nobody = free_port()  # nothing listens there: the target that is down
    jobs = [
        {
            "job_name": job,
            "static_configs": [{"targets": [observed_system.url(port).removeprefix("http://")]}],
        }
        for job, port in SCRAPED.items()
    ]
    jobs.append({"job_name": "gone", "static_configs": [{"targets": [f"127.0.0.1:{nobody}"]}]})
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [
            *(str(path) for path in sorted(RULES_DIR.glob("*.yml"))),
            str(root / "quick.yml"),
        ],
        "scrape_configs": jobs,
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = root / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                assert process.poll() is None, log.read_text()
                return False

        server.wait_for("ready", ready)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _exported(observed: ObservedSystem) -> dict[str, dict[str, float]]:
    """Every sample name each service's /metrics exports, with its summed value."""
    exported: dict[str, dict[str, float]] = {}
    for job, port in SCRAPED.items():
        text = httpx.get(f"{observed.url(port)}/metrics", timeout=10).text
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
        exported[job] = samples
    return exported


@pytest.fixture(scope="module")
def scraped_after_traffic(
    prometheus: Prometheus, observed_system: ObservedSystem
) -> dict[str, dict[str, float]]:
    """Two rounds of the realistic session, each waited for until Prometheus has scraped it.

    Twice, because a series born during a round enters Prometheus with its value already
    counted, so rate() sees no increase in it; the second round moves every series the first
    made. Returns what the services export after the second round."""

    def all_up() -> bool:
        up = {r["metric"]["job"]: r["value"][1] for r in prometheus.query("up")}
        return all(up.get(job) == "1" for job in SCRAPED)

    prometheus.wait_for("every service up", all_up)
    # Counters that only the session moves: once Prometheus has these values, it has the rest.
    landmarks = {
        "users_logins_total": "users",
        "thoughts_created_total": "thoughts",
        "tasks_changes_total": "tasks",
        "frontend_page_renders_total": "frontend",
    }
    for _round in range(2):
        run_realistic_session(observed_system)
        exported = _exported(observed_system)
        for metric, job in landmarks.items():
            expected = exported[job][metric]
            prometheus.wait_for(
                f"{metric} at {expected}",
                lambda metric=metric, expected=expected: any(
                    float(r["value"][1]) >= expected for r in prometheus.query(f"sum({metric})")
                ),
            )

    # ... and the recording rules have evaluated over those scrapes (every objective had traffic).
    def objectives_with_traffic() -> set[str]:
        return {r["metric"]["slo"] for r in prometheus.query("slo:requests:rate5m > 0")}

    try:
        prometheus.wait_for(
            "every objective's request rate", lambda: len(objectives_with_traffic()) == 8
        )
    except AssertionError:
        requests = prometheus.query(
            "sum by (job, route, method) (increase(http_requests_total[5m]))"
        )
        raise AssertionError(
            f"objectives with traffic: {sorted(objectives_with_traffic())}; rules failing: "
            f"{_failing_rules(prometheus)}; requests: {json.dumps(requests)}"
        ) from None
    return exported


def _failing_rules(prometheus: Prometheus) -> list[tuple[str, str]]:
    return [
        (rule["name"], rule.get("lastError", ""))
        for group in prometheus.api("rules")["groups"]
        for rule in group["rules"]
        if rule["health"] not in ("ok", "unknown")
    ]


def _rule_expressions() -> list[tuple[str, str]]:
    return [
        (rule.get("alert") or rule["record"], rule["expr"])
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _dashboard_expressions() -> list[tuple[str, str]]:
    found = []
    for dashboard in DASHBOARDS:
        for title, expr in panel_queries(dashboard_json(dashboard)):
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            found.append((f"{dashboard.uid}: {title}", expr))
    return found


def test_the_tokenizer_finds_metric_names_and_nothing_else() -> None:
    assert metric_names(
        "histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket"
        '{job="users", route=~"/api/(me|login)/"}[1m])))'
    ) == {"http_request_duration_seconds_bucket"}
    assert metric_names(
        'sum(rate(users_logins_total{outcome="failure"}[5m])) > 5 * (sum(rate('
        "users_logins_total[1h] offset 5m)) or vector(0))"
    ) == {"users_logins_total"}
    assert metric_names("1 - slo:fast:rate5m / slo:requests:rate5m") == {
        "slo:fast:rate5m",
        "slo:requests:rate5m",
    }
    assert metric_names(
        "a_total / on (job) group_left (pool) b unless ignoring(x) c > bool 1e3"
    ) == {"a_total", "b", "c"}


def test_every_panel_and_rule_query_parses_and_reads_only_exported_metrics(
    prometheus: Prometheus, scraped_after_traffic: dict[str, dict[str, float]]
) -> None:
    exported = {name for samples in scraped_after_traffic.values() for name in samples}
    recorded = {name for name, _ in _rule_expressions() if ":" in name}
    expressions = _rule_expressions() + _dashboard_expressions()
    assert len(expressions) > 150
    unknown = []
    for where, expr in expressions:
        prometheus.query(expr)  # asserts status "success": a query that does not parse is bad_data
        for name in metric_names(expr):
            if name not in exported and name not in recorded and name not in NOT_FROM_THE_SERVICES:
                unknown.append((where, name))
    assert not unknown, unknown
    # And Prometheus holds what the dashboards read: each name has series there too.
    for name in sorted({n for _, e in _dashboard_expressions() for n in metric_names(e)}):
        assert prometheus.query(f'count({{__name__="{name}"}})'), name


def test_the_dashboards_panels_answer_with_the_sessions_numbers(
    prometheus: Prometheus, scraped_after_traffic: dict[str, dict[str, float]]
) -> None:
    """Every panel of the thoughts dashboard answers from the session's traffic; the answers are
    printed (pytest -s) for whoever reads the run."""
    dashboard = next(d for d in DASHBOARDS if d.uid == "mythoughts-thoughts")
    answers: dict[str, list[str]] = {}
    for title, expr in panel_queries(dashboard_json(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        answers.setdefault(title, []).extend(
            f"{json.dumps(r['metric'], sort_keys=True)} = {float(r['value'][1]):.4g}"
            for r in prometheus.query(expr)
        )
    print(json.dumps(answers, indent=2))
    # No 5xx happened, so that panel is empty; every other one has an answer.
    assert not answers.pop("Errors (5xx) by route")
    assert all(answers.values()), [title for title, lines in answers.items() if not lines]
    strategies = {
        r["metric"]["strategy"]: float(r["value"][1])
        for r in prometheus.query("sum by (strategy) (increase(thoughts_searches_total[5m]))")
    }
    assert strategies["index"] > 0
    assert strategies["scan"] > 0


def test_target_down_fires_for_the_target_that_does_not_answer(prometheus: Prometheus) -> None:
    def firing() -> list[dict[str, Any]]:
        return [
            alert
            for alert in prometheus.api("alerts")["alerts"]
            if alert["labels"]["alertname"] == "TargetDown" and alert["state"] == "firing"
        ]

    alerts = prometheus.wait_for("TargetDown firing", firing)
    assert [alert["labels"]["job"] for alert in alerts] == ["gone"]
    alert = alerts[0]
    assert alert["labels"]["severity"] == "page"
    assert alert["annotations"]["summary"].startswith("Prometheus cannot scrape gone at 127.0.0.1:")
    assert alert["annotations"]["runbook_url"].endswith("RUNBOOK.md#targetdown")
    # The real rule (for: 2m) has seen it too, and waits its two minutes.
    pending = [
        a
        for a in prometheus.api("alerts")["alerts"]
        if a["labels"]["alertname"] == "TargetDown" and a["state"] == "pending"
    ]
    assert [a["labels"]["job"] for a in pending] == ["gone"]
