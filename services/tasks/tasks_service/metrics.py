"""Task metrics, registered beside the kit's HTTP metrics and served by the same /metrics."""

from __future__ import annotations

from typing import Annotated

from servicekit.deps import from_state
from servicekit.metrics import Metrics
from tasks_service.models import SHARED_LIST

OPERATIONS = ("create", "update", "delete", "delete_all")
RESULTS = ("done", "not_found")
LISTS = ("shared", "own")


class TaskMetrics:
    def __init__(self, metrics: Metrics) -> None:
        # Every answer of the tutorial's contract is a 200, "No Task found!" included, so the
        # HTTP metrics cannot tell a change from a miss: result="not_found" does. list="own"
        # counts the callers who send a MyThoughts token (never the username: unbounded).
        self.changes = metrics.counter(
            "tasks_changes",
            "Changes asked of task lists, by operation, whose list and result.",
            ("operation", "list", "result"),
        )
        for operation in OPERATIONS:
            for owner in LISTS:
                for result in RESULTS:
                    self.changes.labels(operation, owner, result)
        # Fetches of the users service's JWKS, when tokens are verified that way.
        self.count_jwks_refresh = metrics.jwks_refresh_counter()

    def count(self, operation: str, owner: str, *, found: bool = True) -> None:
        owner_label = "shared" if owner == SHARED_LIST else "own"
        self.changes.labels(operation, owner_label, "done" if found else "not_found").inc()


TaskMetricsDep = Annotated[TaskMetrics, from_state("task_metrics")]
