"""Login metrics, registered beside the kit's HTTP metrics and served by the same /metrics."""

from __future__ import annotations

from servicekit.metrics import Metrics

LOGIN_OUTCOMES = ("success", "failure", "throttled")


class LoginMetrics:
    def __init__(self, metrics: Metrics) -> None:
        # outcome="failure": wrong username or password (counted by the throttle too);
        # "throttled": refused with 429 before the password was even checked. A rise in
        # failures across many usernames is what credential stuffing looks like (RUNBOOK.md).
        self.logins = metrics.counter("users_logins", "Login attempts, by outcome.", ("outcome",))
        for outcome in LOGIN_OUTCOMES:
            # Present from the start at 0, so rate() sees the first failure as a rise.
            self.logins.labels(outcome)

    def count(self, outcome: str) -> None:
        self.logins.labels(outcome).inc()
