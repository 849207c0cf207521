"""The pytest plugin of every test suite in the workspace (registered once, in the root
conftest.py): real databases (`database_factory`, `db_backend`), in-process apps
(`started_apps`), access tokens of a key made for the session (`token_signer`, `public_keys_dir`,
`auth`; testkit.tokens) and the in-memory span exporter (`span_exporter`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from testkit.apps import StartedApps
from testkit.databases import BACKENDS, DatabaseFactory, need, postgres_available
from testkit.tokens import TokenSigner


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


@pytest.fixture(scope="session")
def token_signer() -> TokenSigner:
    """Signs access tokens with a key generated for this test session."""
    return TokenSigner.generate()


@pytest.fixture(scope="session")
def public_keys_dir(token_signer: TokenSigner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the signer's public key: a verifying service's AUTH_PUBLIC_KEYS_DIR."""
    path = tmp_path_factory.mktemp("public-keys")
    token_signer.write_public_key(path)
    return path


@pytest.fixture(scope="session")
def auth(token_signer: TokenSigner) -> Callable[[str], dict[str, str]]:
    """`auth("bruce")`: the Authorization header of a valid token for bruce."""
    return token_signer.bearer


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
