"""Pytest plugin shared by every service's tests (loaded from the root conftest.py).

Real databases only: each test gets a fresh, migrated SQLite file or PostgreSQL database, cloned
from a template migrated once per session (PostgreSQL: CREATE DATABASE ... TEMPLATE), so tests are
isolated without paying for a migration each. Under CI=true a missing PostgreSQL fails the run;
locally those variants skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from servicekit.migrations import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(reason: str) -> None:
    """Skip locally, fail under CI: a CI run must never silently skip a real dependency."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable ({type(exc).__name__})"


def _pg_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)


def _async_url(name: str) -> str:
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


@dataclass
class DatabaseFactory:
    """Hands out fresh migrated databases for a service's migrations folder."""

    root: Path
    worker: str
    _templates: dict[tuple[str, Path], str] = field(default_factory=dict)
    _created: list[str] = field(default_factory=list)

    def _template(self, backend: str, migrations_dir: Path) -> str:
        key = (backend, migrations_dir)
        if key not in self._templates:
            # The count keeps apart folders whose parents share a name (two `tests/...`).
            n = len(self._templates)
            tag = f"{migrations_dir.parent.name}_{n}_{self.worker}_{os.getpid()}"
            if backend == "sqlite":
                path = self.root / f"template_{tag}.db"
                upgrade(migrations_dir, f"sqlite+aiosqlite:///{path}")
                self._templates[key] = str(path)
            else:
                name = f"mt_tpl_{tag}"
                _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                _pg_execute(f'CREATE DATABASE "{name}"')
                self._created.append(name)
                upgrade(migrations_dir, _async_url(name))
                self._templates[key] = name
        return self._templates[key]

    def fresh(self, backend: str, migrations_dir: Path) -> str:
        template = self._template(backend, migrations_dir)
        if backend == "sqlite":
            path = self.root / f"test_{uuid.uuid4().hex}.db"
            shutil.copyfile(template, path)
            return f"sqlite+aiosqlite:///{path}"
        name = f"mt_test_{uuid.uuid4().hex[:16]}"
        _pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self._created.append(name)
        return _async_url(name)

    def empty(self, backend: str) -> str:
        """An unmigrated database, for migration tests."""
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.root / f'empty_{uuid.uuid4().hex}.db'}"
        name = f"mt_empty_{uuid.uuid4().hex[:16]}"
        _pg_execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return _async_url(name)

    def drop_all(self) -> None:
        # Every DROP DATABASE waits for a checkpoint (~1 s each here); run side by side they
        # share checkpoints, so a session's hundred databases go in about a second, not minutes.
        names = list(reversed(self._created))
        self._created.clear()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(
                pool.map(
                    lambda name: _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'),
                    names,
                )
            )


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """A real service process started with the same command as `make run`, on a free port."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        """Launches the process and waits until it answers /healthz."""
        self.launch()
        self.wait_until(timeout=timeout)
        return self

    def launch(self) -> None:
        # The child writes through its own copy of the descriptor: ours is closed at once.
        with self.log_path.open("wb") as log_file:
            # No load balancer waits on a test's process: no drain, unless the test sets one.
            env = {**os.environ, "SHUTDOWN_DRAIN_SECONDS": "0", **self.env}
            self.process = subprocess.Popen(  # noqa: S603 - argv built by tests
                self.argv, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )

    def wait_until(self, path: str = "/healthz", timeout: float = 30.0) -> None:
        """Waits until `path` answers 200; stops the process and raises if it never does."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {path} in {timeout}s:\n{self.logs()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def python_module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_schemathesis(
    app: Any,
    *,
    headers: dict[str, str] | None = None,
    max_examples: int = 25,
    negative: bool = False,
) -> list[str]:
    """Drives every operation of the app's OpenAPI schema with generated requests, in process.

    Every default Schemathesis check runs (no server errors, status codes, content types,
    response bodies match the schema). Returns the operations exercised; raises on the first
    failing case with Schemathesis's reproduction details. With `negative=True`, operations that
    take input are also sent input the schema forbids, which must be refused with a 4xx.
    """
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    modes = [schemathesis.GenerationMode.POSITIVE]
    if negative:
        modes.append(schemathesis.GenerationMode.NEGATIVE)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    exercised = []
    for result in schema.get_all_operations():
        operation = cast(Any, result).ok()  # an Err raises its schema error here
        for mode in modes:
            # Fixed headers (the bearer token) are part of each case rather than added when it
            # is sent: negative cases then never "remove" a header that is sent anyway.
            @given(case=operation.as_strategy(mode, headers=headers))
            @settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                case.call_and_validate()

            try:
                check()
            except Unsatisfiable:
                if mode is schemathesis.GenerationMode.POSITIVE:
                    raise
                # An operation without parameters or body has no invalid input to send.
        exercised.append(operation.label)
    return exercised


class StartedApps:
    """Runs apps in process, lifespan included, and hands out clients; closes all at the end."""

    def __init__(self) -> None:
        from contextlib import AsyncExitStack

        self._stack = AsyncExitStack()
        self._apps: dict[int, Any] = {}  # id(client) -> the started app it calls

    async def client(
        self,
        app: Any,
        *,
        base_url: str = "http://service.test",
        client_address: tuple[str, int] = ("203.0.113.7", 4321),
    ) -> httpx.AsyncClient:
        from asgi_lifespan import LifespanManager

        manager = await self._stack.enter_async_context(LifespanManager(app))
        return await self._client_of(manager.app, base_url, client_address)

    async def peer(
        self, client: httpx.AsyncClient, client_address: tuple[str, int]
    ) -> httpx.AsyncClient:
        """Another client of the app that `client` calls (same state), from another address."""
        return await self._client_of(self._apps[id(client)], str(client.base_url), client_address)

    async def _client_of(
        self, app: Any, base_url: str, client_address: tuple[str, int]
    ) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=client_address)
        # Entered after its app, so closed before it: clients first, then lifespans, in reverse.
        client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url=base_url)
        )
        self._apps[id(client)] = app
        return client

    async def aclose(self) -> None:
        await self._stack.aclose()


@pytest.fixture
async def started_apps() -> Any:
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
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if _SPAN_EXPORTER is None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _SPAN_EXPORTER = exporter
    _SPAN_EXPORTER.clear()
    return _SPAN_EXPORTER
