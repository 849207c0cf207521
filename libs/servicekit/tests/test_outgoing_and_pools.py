"""The metrics of calls to other services and of database pools, and the trace context they
carry: counted once per call by dependency and outcome, pools read at scrape time."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from servicekit.db import Database, DatabaseOptions
from servicekit.http import create_http_client
from servicekit.metrics import Metrics
from servicekit.tracing import Tracing


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_each_call_counts_once_by_dependency_and_outcome_retries_included() -> None:
    answers: list[int | Exception] = [200, 503, 503, 503, 404]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)

    metrics = Metrics("test")
    async with create_http_client(
        transport=httpx.MockTransport(handler), metrics=metrics, retries=2
    ) as client:
        await client.get("http://users.test/a", extensions={"dependency": "users"})
        await client.get("http://users.test/b", extensions={"dependency": "users"})  # 3 tries
        await client.get("http://thoughts.internal:8000/c")  # unnamed: labelled by its host

    counts = samples(metrics, "http_client_requests_total")
    assert counts == {
        (("dependency", "users"), ("outcome", "2xx")): 1.0,
        (("dependency", "users"), ("outcome", "5xx")): 1.0,
        (("dependency", "thoughts.internal"), ("outcome", "4xx")): 1.0,
    }
    durations = samples(metrics, "http_client_request_duration_seconds_count")
    assert durations[(("dependency", "users"), ("outcome", "5xx"))] == 1.0


@pytest.mark.parametrize(
    ("error", "outcome"),
    [(httpx.ConnectError("refused"), "connect_error"), (httpx.ReadTimeout("slow"), "timeout")],
)
async def test_a_call_without_an_answer_counts_as_why(error: Exception, outcome: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    metrics = Metrics("test")
    async with create_http_client(
        transport=httpx.MockTransport(handler), metrics=metrics, retries=0
    ) as client:
        with pytest.raises(type(error)):
            await client.get("http://users.test/", extensions={"dependency": "users"})

    assert samples(metrics, "http_client_requests_total") == {
        (("dependency", "users"), ("outcome", outcome)): 1.0
    }


async def test_traceparent_goes_out_only_with_tracing_on(span_exporter: Any) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(200)

    tracing = Tracing.from_settings("test", "1", "http://collector.test:4318")
    assert tracing is not None
    assert Tracing.from_settings("test", "1", None) is None
    async with create_http_client(transport=httpx.MockTransport(handler)) as client:
        await client.get("http://users.test/")
    async with create_http_client(transport=httpx.MockTransport(handler), tracing=tracing) as c:
        await c.get("http://users.test/", extensions={"dependency": "users"})

    assert seen[0] is None
    (span,) = span_exporter.get_finished_spans()
    assert span.name == "GET users"
    context = span.context
    assert (seen[1] or "").startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")


async def test_pool_gauges_are_read_when_scraped(migrated_url: str, db_backend: str) -> None:
    database = Database(migrated_url, DatabaseOptions(pool_size=3, driver_pool=True))
    metrics = Metrics("test")
    metrics.watch_pools(database.pool_stats)
    try:
        async with database.engine.connect():
            in_use = samples(metrics, "db_pool_connections")
            assert in_use[(("pool", "sqlalchemy"), ("state", "in_use"))] == 1.0
        assert (
            samples(metrics, "db_pool_connections")[(("pool", "sqlalchemy"), ("state", "in_use"))]
            == 0.0
        )
        pool = await database.driver()
        await pool.fetch("SELECT 1", [])
        driver = samples(metrics, "db_pool_connections")
        waiting = samples(metrics, "db_pool_waiting")
        if db_backend == "postgresql":
            assert driver[(("pool", "driver"), ("state", "idle"))] == 1.0
            assert waiting == {(("pool", "driver"),): 0.0}
        else:  # SQLite's driver reads on one connection of its own: no pool to report
            assert (("pool", "driver"), ("state", "idle")) not in driver
    finally:
        await database.dispose()
