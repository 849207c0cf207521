"""Business metrics, registered beside the kit's HTTP metrics and served by the same /metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from servicekit.metrics import Metrics


class ThoughtMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.created = metrics.counter("thoughts_created", "Thoughts posted.")
        # strategy="index": answered by the trigram index; "scan": a query shorter than a
        # trigram, answered by walking ids until a page is full. Many scans at scale are a sign
        # that clients send very short queries.
        self.searches = metrics.counter(
            "thoughts_searches", "Searches run, by how they were answered.", ("strategy",)
        )
        # Fetches of the users service's JWKS (thoughts_service.main): failures mean a new
        # signing key stays unknown here, and tokens signed with it are refused.
        self.jwks_refreshes = metrics.counter(
            "auth_jwks_refreshes", "Fetches of the signing keys (JWKS), by outcome.", ("outcome",)
        )
        for outcome in ("success", "failure"):
            self.jwks_refreshes.labels(outcome)

    def count_jwks_refresh(self, succeeded: bool) -> None:
        self.jwks_refreshes.labels("success" if succeeded else "failure").inc()


async def get_thought_metrics(request: Request) -> ThoughtMetrics:
    # async: a plain `def` dependency would run in a worker thread (servicekit.deps).
    metrics: ThoughtMetrics = request.app.state.thought_metrics
    return metrics


ThoughtMetricsDep = Annotated[ThoughtMetrics, Depends(get_thought_metrics)]
