"""The service level objectives of MyThoughts, per public route group, and their recording rules.

`OBJECTIVES` is the one table: deploy/observability/SLOS.md describes it and
deploy/observability/prometheus/rules/slo.yml is generated from it (`python -m devtools
observability generate`; a test fails when the committed file differs). Each group is a set of
public routes of one service (admin and probe routes are never user traffic) with a latency
threshold that is a bucket bound of the kit's histogram, so "share under the threshold" is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Availability 99.9 % and latency 99 % for every group: one error budget each, which the
# burn-rate alerts (rules/alerts.yml) multiply.
AVAILABILITY_TARGET = 0.999
LATENCY_TARGET = 0.99
# The windows the multi-window, multi-burn-rate alerts read (SRE workbook, chapter 5).
WINDOWS = ("5m", "30m", "1h", "6h")
READ_METHODS = "GET|HEAD"
WRITE_METHODS = "POST|PUT|PATCH|DELETE"


@dataclass(frozen=True)
class Objective:
    slo: str  # the `slo` label of the recorded series
    job: str  # the service (the scrape job)
    routes: tuple[str, ...]  # route templates, as the kit labels them
    methods: str  # a regular expression on the method label
    threshold: float  # seconds; a bucket bound of servicekit.metrics.LATENCY_BUCKETS
    what: str  # for SLOS.md

    @property
    def threshold_label(self) -> str:
        # prometheus_client writes bucket bounds with Python's float repr: 1.0, 0.25.
        return repr(float(self.threshold))

    def selector(self, extra: str = "") -> str:
        routes = "|".join(_regex_literal(route) for route in self.routes)
        matchers = f'job="{self.job}", route=~"{routes}", method=~"{self.methods}"'
        return "{" + matchers + (f", {extra}" if extra else "") + "}"


def _regex_literal(text: str) -> str:
    """`text` matched literally by a PromQL regex, in a PromQL string (backslashes doubled)."""
    for special in ".{}":
        text = text.replace(special, "\\\\" + special)
    return text


OBJECTIVES = (
    Objective(
        "thoughts-read",
        "thoughts",
        ("/api/thoughts/", "/api/thoughts/{thought_id}/", "/api/me/thoughts/"),
        READ_METHODS,
        0.25,
        "list, search and read thoughts",
    ),
    Objective(
        "thoughts-write",
        "thoughts",
        ("/api/me/thoughts/", "/api/me/thoughts/{thought_id}/"),
        WRITE_METHODS,
        0.5,
        "post and delete one's thoughts",
    ),
    Objective(
        "users-login",
        "users",
        ("/api/login/", "/api/token", "/api/users/", "/api/logout/"),
        "POST",
        1.0,
        "log in, get a token, sign up (an argon2id hash each, by design slow), log out",
    ),
    Objective(
        "users-read",
        "users",
        ("/api/me/", "/api/features/", "/.well-known/jwks.json"),
        READ_METHODS,
        0.25,
        "who am I, features, the signing keys",
    ),
    Objective(
        "frontend-pages",
        "frontend",
        ("/", "/login", "/search", "/signup"),
        READ_METHODS,
        0.5,
        "the web pages (each calls users and thoughts)",
    ),
    Objective(
        "frontend-forms",
        "frontend",
        ("/login", "/logout", "/signup", "/thoughts/", "/thoughts/{thought_id}/delete"),
        "POST",
        1.0,
        "the web forms (logging in hashes a password)",
    ),
    Objective(
        "tasks-read",
        "tasks",
        ("/", "/tasks"),
        READ_METHODS,
        0.25,
        "the tutorial's welcome and task list",
    ),
    Objective(
        "tasks-write",
        "tasks",
        ("/task", "/task/{task_id}", "/tasks/delete"),
        WRITE_METHODS,
        0.5,
        "add, change, delete tasks",
    ),
)


def _labels(objective: Objective, threshold: str) -> dict[str, str]:
    # The threshold as a label too, so an alert's description can say it.
    return {"slo": objective.slo, "threshold": threshold}


def _rate(metric: str, objective: Objective, window: str, extra: str = "") -> str:
    return f"sum by (job) (rate({metric}{objective.selector(extra)}[{window}]))"


def recording_rules() -> dict[str, Any]:
    """The content of rules/slo.yml."""
    rules: list[dict[str, Any]] = []
    for window in WINDOWS:
        for objective in OBJECTIVES:
            # The threshold as a label too, so an alert's description can say it.
            threshold = f"{int(objective.threshold * 1000)}ms"
            requests = _rate("http_requests_total", objective, window)
            errors = _rate("http_requests_total", objective, window, 'status=~"5.."')
            fast = _rate(
                "http_request_duration_seconds_bucket",
                objective,
                window,
                f'le="{objective.threshold_label}"',
            )
            rules += [
                {
                    "record": f"slo:requests:rate{window}",
                    "expr": requests,
                    "labels": _labels(objective, threshold),
                },
                # `or 0 * ...`: a group that never failed has no 5xx series; its ratio is 0,
                # not absent, so dashboards and `unless` clauses see it.
                {
                    "record": f"slo:errors:rate{window}",
                    "expr": f"{errors} or 0 * {requests}",
                    "labels": _labels(objective, threshold),
                },
                {
                    "record": f"slo:fast:rate{window}",
                    "expr": fast,
                    "labels": _labels(objective, threshold),
                },
            ]
        rules += [
            {
                "record": f"slo:errors:ratio_rate{window}",
                "expr": f"slo:errors:rate{window} / slo:requests:rate{window}",
            },
            {
                "record": f"slo:slow:ratio_rate{window}",
                "expr": f"1 - slo:fast:rate{window} / slo:requests:rate{window}",
            },
        ]
    return {"groups": [{"name": "slo-recording", "rules": rules}]}


HEADER = """\
# GENERATED by `python -m devtools observability generate` from devtools/devtools/slos.py (the
# objectives table, described in deploy/observability/SLOS.md): edit the table, not this file.
# Per objective (the `slo` label) and window: requests, 5xx errors and requests faster than the
# group's threshold; then the error and slow ratios the burn-rate alerts (alerts.yml) read.
"""


def slos_markdown_table() -> str:
    lines = [
        "| objective (`slo`) | service | routes | availability | latency |",
        "|---|---|---|---|---|",
    ]
    for o in OBJECTIVES:
        routes = ", ".join(f"`{route}`" for route in o.routes)
        lines.append(
            f"| `{o.slo}`: {o.what} | {o.job} | {o.methods.replace('|', ' ')} {routes} "
            f"| {AVAILABILITY_TARGET:.1%} non-5xx | {LATENCY_TARGET:.0%} within "
            f"{int(o.threshold * 1000)} ms |"
        )
    return "\n".join(lines)
