"""The Grafana dashboards of MyThoughts, as code: one overview and one per service.

`python -m devtools observability generate` writes them as Grafana JSON into
deploy/observability/grafana/dashboards/, which Grafana's file provisioning loads at start
(deploy/observability/grafana/provisioning/); a test fails when the committed JSON differs from
what this module builds, and tests/test_prometheus_queries.py runs every panel's query through
a real Prometheus scraping the real services. Plain dictionaries in Grafana's dashboard JSON
model (schemaVersion 39): nothing to install, and the JSON is what a reviewer reads in a diff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devtools.slos import AVAILABILITY_TARGET, LATENCY_TARGET

# The data source's uid, fixed by the provisioning file (grafana/provisioning/datasources).
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
PROBES = 'route!~"/healthz|/readyz|/metrics"'
SERVER_ERRORS = 'status=~"5.."'
FAILED_CALLS = 'outcome!~"2xx|3xx|4xx"'
SERVICES = ("thoughts", "users", "frontend", "tasks")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def q(expr: str, legend: str) -> Query:
    return Query(" ".join(expr.split()), legend)


def _rate(metric: str, selector: str = "") -> str:
    return f"rate({metric}{{{selector}}}[$__rate_interval])"


def _quantile(quantile: float, metric: str, selector: str, by: str) -> str:
    return (
        f"histogram_quantile({quantile}, sum by (le, {by}) ({_rate(metric + '_bucket', selector)}))"
    )


def _jwks_fetches(job: str) -> str:
    return f'sum by (outcome) (increase(auth_jwks_refreshes_total{{job="{job}"}}[$__range]))'


# Panels every service dashboard starts with: its own RED metrics and saturation.
def service_panels(job: str, *, database: bool = True) -> tuple[Panel, ...]:
    sel = f'job="{job}", {PROBES}'
    pool = Panel(
        "Database pool",
        (
            q(f'sum by (pool, state) (db_pool_connections{{job="{job}"}})', "{{pool}} {{state}}"),
            q(f'sum by (pool) (db_pool_waiting{{job="{job}"}})', "{{pool}} waiting"),
        ),
        "short",
        "Connections in use and idle, and callers waiting for one (DatabasePoolExhausted; "
        "PostgreSQL's driver pool only).",
    )
    return (
        Panel(
            "Requests by route",
            (
                q(
                    f"sum by (route, method) ({_rate('http_requests_total', sel)})",
                    "{{method}} {{route}}",
                ),
            ),
            "reqps",
        ),
        Panel(
            "Errors (5xx) by route",
            (
                q(
                    "sum by (route, status) "
                    f"({_rate('http_requests_total', f'{sel}, {SERVER_ERRORS}')})",
                    "{{route}} {{status}}",
                ),
            ),
            "reqps",
        ),
        Panel(
            "Latency p99 by route",
            (q(_quantile(0.99, "http_request_duration_seconds", sel, "route"), "{{route}}"),),
            "s",
        ),
        *((pool,) if database else ()),
        Panel(
            "Objectives: error budget burn (1h)",
            (
                q(
                    f'slo:errors:ratio_rate1h{{job="{job}"}} / {1 - AVAILABILITY_TARGET:.3f}',
                    "{{slo}} availability",
                ),
                q(
                    f'slo:slow:ratio_rate1h{{job="{job}"}} / {1 - LATENCY_TARGET:.2f}',
                    "{{slo}} latency",
                ),
            ),
            "short",
            "1 spends the 30-day budget in 30 days; the page alerts fire at 14.4 (SLOS.md).",
        ),
    )


OVERVIEW = Dashboard(
    "mythoughts-overview",
    "MyThoughts overview",
    "Every service's rate, errors, latency, saturation and objective burn (deploy/observability).",
    (
        Panel("Targets up", (q("up", "{{job}} {{instance}}"),), "short", kind="stat"),
        Panel(
            "Request rate by service",
            (q(f"sum by (job) ({_rate('http_requests_total', PROBES)})", "{{job}}"),),
            "reqps",
        ),
        Panel(
            "Error ratio (5xx) by service",
            (
                q(
                    "sum by (job) "
                    f"({_rate('http_requests_total', f'{PROBES}, {SERVER_ERRORS}')})"
                    f" / sum by (job) ({_rate('http_requests_total', PROBES)})",
                    "{{job}}",
                ),
            ),
            "percentunit",
        ),
        Panel(
            "Latency p50 by service",
            (q(_quantile(0.5, "http_request_duration_seconds", PROBES, "job"), "{{job}}"),),
            "s",
        ),
        Panel(
            "Latency p99 by service",
            (q(_quantile(0.99, "http_request_duration_seconds", PROBES, "job"), "{{job}}"),),
            "s",
        ),
        Panel(
            "Saturation: database connections in use, callers waiting",
            (
                q('sum by (job) (db_pool_connections{state="in_use"})', "{{job}} in use"),
                q("sum by (job) (db_pool_waiting)", "{{job}} waiting"),
            ),
            "short",
        ),
        Panel(
            "Calls between services failing",
            (
                q(
                    "sum by (job, dependency) "
                    f"({_rate('http_client_requests_total', FAILED_CALLS)})",
                    "{{job}} -> {{dependency}}",
                ),
            ),
            "reqps",
        ),
        Panel(
            "Availability budget burn by objective (1h)",
            (
                q(
                    f"slo:errors:ratio_rate1h / {1 - AVAILABILITY_TARGET:.3f}",
                    "{{job}} {{slo}}",
                ),
            ),
            "short",
            "Burn rate: 1 uses the month's budget in a month; AvailabilityFastBurn at 14.4.",
        ),
        Panel(
            "Latency budget burn by objective (1h)",
            (q(f"slo:slow:ratio_rate1h / {1 - LATENCY_TARGET:.2f}", "{{job}} {{slo}}"),),
            "short",
            "Burn rate of the latency objectives; LatencyFastBurn at 14.4.",
        ),
    ),
)

USERS = Dashboard(
    "mythoughts-users",
    "MyThoughts users",
    "Accounts and logins: outcomes, throttling, login latency, the signing keys' readers.",
    (
        Panel(
            "Logins by outcome",
            (q(f"sum by (outcome) ({_rate('users_logins_total')})", "{{outcome}}"),),
            "reqps",
            "failure: wrong name or password; throttled: refused with 429 before checking.",
        ),
        Panel(
            "Throttled logins",
            (q("sum(" + _rate("users_logins_total", 'outcome="throttled"') + ")", "throttled"),),
            "reqps",
        ),
        Panel(
            "Failed login share",
            (
                q(
                    "sum(" + _rate("users_logins_total", 'outcome="failure"') + ")"
                    f" / sum({_rate('users_logins_total')})",
                    "failed",
                ),
            ),
            "percentunit",
            "A sudden rise across many names is credential stuffing (FailedLoginsSurge).",
        ),
        Panel(
            "Login latency p50 / p99 (argon2id)",
            (
                q(
                    _quantile(
                        0.5,
                        "http_request_duration_seconds",
                        'job="users", route="/api/login/"',
                        "job",
                    ),
                    "p50",
                ),
                q(
                    _quantile(
                        0.99,
                        "http_request_duration_seconds",
                        'job="users", route="/api/login/"',
                        "job",
                    ),
                    "p99",
                ),
            ),
            "s",
        ),
        *service_panels("users"),
    ),
)

THOUGHTS = Dashboard(
    "mythoughts-thoughts",
    "MyThoughts thoughts",
    "Posts, searches by strategy and their latency, the JWKS the tokens are checked with.",
    (
        Panel("Thoughts posted", (q(f"sum({_rate('thoughts_created_total')})", "posted"),), "ops"),
        Panel(
            "Searches by strategy",
            (q(f"sum by (strategy) ({_rate('thoughts_searches_total')})", "{{strategy}}"),),
            "ops",
            "index: the trigram index; scan: a query shorter than a trigram (slow at scale).",
        ),
        Panel(
            "Search latency p50 / p99 by strategy",
            (
                q(
                    _quantile(0.5, "thoughts_search_duration_seconds", "", "strategy"),
                    "p50 {{strategy}}",
                ),
                q(
                    _quantile(0.99, "thoughts_search_duration_seconds", "", "strategy"),
                    "p99 {{strategy}}",
                ),
            ),
            "s",
        ),
        Panel(
            "JWKS fetches by outcome",
            (
                q(
                    _jwks_fetches("thoughts"),
                    "{{outcome}}",
                ),
            ),
            "short",
            "Failures mean tokens signed with a new key are refused (JWKSRefreshFailing).",
            kind="stat",
        ),
        *service_panels("thoughts"),
    ),
)

FRONTEND = Dashboard(
    "mythoughts-frontend",
    "MyThoughts frontend",
    "Pages rendered, render time, backend errors met by visitors, calls to users and thoughts.",
    (
        Panel(
            "Pages rendered by page and status",
            (
                q(
                    f"sum by (page, status) ({_rate('frontend_page_renders_total')})",
                    "{{page}} {{status}}",
                ),
            ),
            "ops",
        ),
        Panel(
            "Template render time p99",
            (q(_quantile(0.99, "frontend_page_render_seconds", "", "page"), "{{page}}"),),
            "s",
        ),
        Panel(
            "Backend errors shown to visitors (503 pages)",
            (q(f"sum by (backend) ({_rate('frontend_backend_errors_total')})", "{{backend}}"),),
            "ops",
        ),
        Panel(
            "Calls to backends by outcome",
            (
                q(
                    "sum by (dependency, outcome) "
                    "(" + _rate("http_client_requests_total", 'job="frontend"') + ")",
                    "{{dependency}} {{outcome}}",
                ),
            ),
            "reqps",
        ),
        Panel(
            "Backend call latency p99",
            (
                q(
                    _quantile(
                        0.99, "http_client_request_duration_seconds", 'job="frontend"', "dependency"
                    ),
                    "{{dependency}}",
                ),
            ),
            "s",
        ),
        *service_panels("frontend", database=False),  # it owns no data
    ),
)

TASKS = Dashboard(
    "mythoughts-tasks",
    "MyThoughts tasks",
    "The tutorial's to-do API: changes by operation and result, own or shared lists.",
    (
        Panel(
            "Task changes by operation and result",
            (
                q(
                    f"sum by (operation, result) ({_rate('tasks_changes_total')})",
                    "{{operation}} {{result}}",
                ),
            ),
            "ops",
            'Every answer is a 200, "No Task found!" too: result="not_found" tells them apart.',
        ),
        Panel(
            "Changes on own lists (with a token) vs the shared list",
            (q(f"sum by (list) ({_rate('tasks_changes_total')})", "{{list}}"),),
            "ops",
        ),
        Panel(
            "JWKS fetches by outcome",
            (
                q(
                    _jwks_fetches("tasks"),
                    "{{outcome}}",
                ),
            ),
            "short",
            kind="stat",
        ),
        *service_panels("tasks"),
    ),
)

DASHBOARDS = (OVERVIEW, USERS, THOUGHTS, FRONTEND, TASKS)


def _panel_json(panel: Panel, panel_id: int) -> dict[str, Any]:
    width = 12
    column = (panel_id - 1) % 2
    row = (panel_id - 1) // 2
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": column * width, "y": row * 8, "w": width, "h": 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
            }
            for index, query in enumerate(panel.queries)
        ],
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["mythoughts"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "links": [
            {
                "title": other.title,
                "type": "link",
                "url": f"/d/{other.uid}",
            }
            for other in DASHBOARDS
            if other.uid != dashboard.uid
        ],
        "panels": [
            _panel_json(panel, index) for index, panel in enumerate(dashboard.panels, start=1)
        ],
    }


def panel_queries(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of a dashboard's JSON."""
    return [
        (panel["title"], target["expr"])
        for panel in document["panels"]
        for target in panel.get("targets", [])
    ]
