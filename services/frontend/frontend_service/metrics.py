"""Frontend metrics, registered beside the kit's HTTP metrics and served by the same /metrics."""

from __future__ import annotations

from servicekit.metrics import Metrics


class FrontendMetrics:
    def __init__(self, metrics: Metrics) -> None:
        # By template (a closed set of files), not by path: what users saw, error pages included.
        self.renders = metrics.counter(
            "frontend_page_renders", "Pages rendered, by template and status.", ("page", "status")
        )
        self.render_latency = metrics.histogram(
            "frontend_page_render_seconds",
            "Time to render a page's template (the backends' calls excluded), by template.",
            ("page",),
        )
        # The 503 pages: a backend down, slow or failing, as the visitor met it (the kit's
        # http_client_requests_total counts the calls; this counts the pages that failed).
        self.backend_errors = metrics.counter(
            "frontend_backend_errors",
            "Pages answered 503 because a backend service was unavailable, by backend.",
            ("backend",),
        )
        for backend in ("users", "thoughts"):
            self.backend_errors.labels(backend)

    def rendered(self, template: str, status: int, seconds: float) -> None:
        page = template.removesuffix(".html")
        self.renders.labels(page, str(status)).inc()
        self.render_latency.labels(page).observe(seconds)
