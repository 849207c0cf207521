"""The pytest plugin of every test suite in the workspace (registered once, in the root
conftest.py): real databases (`database_factory`, `db_backend`), in-process apps
(`started_apps`), and the in-memory span exporter (`span_exporter`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from testkit.apps import StartedApps
from testkit.databases import BACKENDS, DatabaseFactory, need, postgres_available


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"), worker)
    yield factory
    factory.drop_all()


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """Parametrizes a test over SQLite and PostgreSQL."""
    backend: str = request.param
    if backend == "postgresql":
        reason = postgres_available()
        if reason:
            need(reason)
    return backend


@pytest.fixture
async def started_apps() -> AsyncIterator[StartedApps]:
    """`await started_apps.client(app)`: an in-process client of a started app."""
    apps = StartedApps()
    yield apps
    await apps.aclose()


_SPAN_EXPORTER: Any = None


@pytest.fixture
def span_exporter() -> Any:
    """The SDK's in-memory span exporter behind this process's tracer provider, emptied.

    Installed once per process (OpenTelemetry allows one global provider). It turns nothing on
    by itself: a service traces only when its OTEL_EXPORTER_OTLP_ENDPOINT setting is set, and
    then uses this provider instead of making an OTLP one (servicekit.tracing).
    """
    global _SPAN_EXPORTER
    if _SPAN_EXPORTER is None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _SPAN_EXPORTER = exporter
    _SPAN_EXPORTER.clear()
    return _SPAN_EXPORTER
