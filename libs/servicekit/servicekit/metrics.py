"""Prometheus metrics with bounded labels: RED metrics of the requests a service answers (route
template, method, status), of the calls it makes (dependency, outcome) and its database pools.

Every label takes values from a closed set or from the service's own configuration (route
templates, dependency names), never from a request, so a client cannot grow the series count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Outcomes of an outgoing call: the status class of its answer, or why there was none.
OUTGOING_OUTCOMES = ("2xx", "3xx", "4xx", "5xx", "timeout", "connect_error", "error")


@dataclass(frozen=True)
class PoolStats:
    """One connection pool, read when Prometheus scrapes (nothing is counted per query)."""

    pool: str  # "sqlalchemy" or "driver"
    in_use: int
    idle: int
    waiting: int | None  # None: the pool cannot tell


class PoolCollector(Collector):
    def __init__(self, read: Callable[[], Iterable[PoolStats]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "db_pool_connections",
            "Database connections of the process's pools, by pool and state (in_use, idle).",
            labels=["pool", "state"],
        )
        waiting = GaugeMetricFamily(
            "db_pool_waiting",
            "Callers waiting for a connection because every connection of the pool is in use.",
            labels=["pool"],
        )
        for stats in self._read():
            connections.add_metric([stats.pool, "in_use"], stats.in_use)
            connections.add_metric([stats.pool, "idle"], stats.idle)
            if stats.waiting is not None:
                waiting.add_metric([stats.pool], stats.waiting)
        yield connections
        yield waiting


class Metrics:
    """One registry per app, so several apps can live in one process (tests) without clashes.

    With several worker processes, set PROMETHEUS_MULTIPROC_DIR: every worker writes its samples
    there and /metrics aggregates them (the pool gauges, read live from one worker, are left out).
    """

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.service = service
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests handled, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to handle an HTTP request, by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.outgoing = Counter(
            "http_client_requests_total",
            "Calls to other services, by dependency and outcome (status class, timeout, "
            "connect_error, error); retries of one call count once.",
            ["dependency", "outcome"],
            registry=self.registry,
        )
        self.outgoing_latency = Histogram(
            "http_client_request_duration_seconds",
            "Time of a call to another service, retries included, by dependency and outcome.",
            ["dependency", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        # The pair of children of one (route, method, status), looked up once: `labels()` costs
        # a lock and a tuple each time, twice per request. Bounded like the labels themselves.
        method = method if method in KNOWN_METHODS else "OTHER"  # before the cache: its key
        children = self._request_children.get((route, method, status))
        if children is None:
            labels = (route, method, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[(route, method, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_outgoing(self, dependency: str, outcome: str, seconds: float) -> None:
        self.outgoing.labels(dependency, outcome).inc()
        self.outgoing_latency.labels(dependency, outcome).observe(seconds)

    def watch_pools(self, read: Callable[[], Iterable[PoolStats]]) -> None:
        """Serves the pools `read()` describes as db_pool_* gauges, read at each scrape."""
        self.registry.register(PoolCollector(read))

    def counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        """A business metric registered beside the HTTP ones."""
        return Counter(name, documentation, list(labels), registry=self.registry)

    def histogram(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Histogram:
        """A business latency (seconds), with the same buckets as the HTTP latency."""
        return Histogram(
            name, documentation, list(labels), buckets=LATENCY_BUCKETS, registry=self.registry
        )

    def jwks_refresh_counter(self) -> Callable[[bool], None]:
        """`auth_jwks_refreshes_total{outcome}` for a service that fetches the users service's
        JWKS; the returned function is the key source's `on_refresh` callback. Failures mean a
        new signing key stays unknown here and tokens signed with it are refused."""
        refreshes = self.counter(
            "auth_jwks_refreshes", "Fetches of the signing keys (JWKS), by outcome.", ("outcome",)
        )
        for outcome in ("success", "failure"):
            refreshes.labels(outcome)  # present at 0, so the first failure is a rise

        def count(succeeded: bool) -> None:
            refreshes.labels("success" if succeeded else "failure").inc()

        return count

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
