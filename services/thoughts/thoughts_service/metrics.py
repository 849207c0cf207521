"""Business metrics, registered beside the kit's HTTP metrics and served by the same /metrics."""

from __future__ import annotations

from typing import Annotated

from servicekit.deps import from_state
from servicekit.metrics import Metrics
from thoughts_service.repository import SearchStrategy


class ThoughtMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.created = metrics.counter("thoughts_created", "Thoughts posted.")
        # strategy="index": answered by the trigram index; "scan": a query shorter than a
        # trigram, answered by walking ids until a page is full. Many scans at scale are a sign
        # that clients send very short queries.
        self.searches = metrics.counter(
            "thoughts_searches", "Searches run, by how they were answered.", ("strategy",)
        )
        # The search alone (the route's latency mixes searches with plain listing), timeouts
        # included: a slow "scan" next to a quick "index" is the short-query problem.
        self.search_latency = metrics.histogram(
            "thoughts_search_duration_seconds",
            "Time to answer a search, by how it was answered.",
            ("strategy",),
        )
        for strategy in SearchStrategy:
            self.searches.labels(strategy.value)
            self.search_latency.labels(strategy.value)
        # Fetches of the users service's JWKS (thoughts_service.main).
        self.count_jwks_refresh = metrics.jwks_refresh_counter()


ThoughtMetricsDep = Annotated[ThoughtMetrics, from_state("thought_metrics")]
