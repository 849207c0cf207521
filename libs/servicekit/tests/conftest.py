"""Fixtures for the kit's own tests: the example service in-process and as real servers.

The root conftest loads `testkit.plugin` (db_backend, database_factory; testkit has free_port,
ServiceProcess). The example service lives beside the tests; pytest runs in importlib mode, so
it is loaded here by path under a name of its own and handed to the tests as the `example`
fixture.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from _pytest.logging import LogCaptureHandler
from fastapi import FastAPI

from servicekit.lifecycle import reset_for_tests
from servicekit.logs import JsonFormatter
from servicekit.settings import ServiceSettings
from testkit import DatabaseFactory, ProcessGroup, ServiceProcess, StartedApps

HERE = Path(__file__).resolve().parent
# Loggers that configure_logging() changes besides the root logger.
KIT_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "granian",
    "httpx",
    "alembic.runtime.migration",
)


def _load_example_service() -> ModuleType:
    name = "servicekit_tests_example_service"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "example_service.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # pydantic resolves the models' annotations through it
        spec.loader.exec_module(module)
    return sys.modules[name]


EXAMPLE = _load_example_service()


@pytest.fixture
def example() -> ModuleType:
    """The example service module (create_app, ExampleSettings, MIGRATIONS_DIR, ...)."""
    return EXAMPLE


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of the developer's shell leaks into a test."""
    names = [*ServiceSettings.model_fields, "downstream_url"]
    for name in names:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(f"{name.upper()}_FILE", raising=False)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging() replaces the root handlers with a JSON handler bound to the stdout of
    the moment (often capsys's buffer): put pytest's handlers and the levels back afterwards."""
    root = logging.getLogger()
    # pytest's per-phase capture handlers come and go by themselves; keep the session ones.
    session_handlers = [h for h in root.handlers if not isinstance(h, LogCaptureHandler)]
    root_level = root.level
    saved = {
        name: (logger.handlers[:], logger.propagate, logger.disabled, logger.level)
        for name in KIT_LOGGERS
        for logger in [logging.getLogger(name)]
    }
    yield
    root.handlers[:] = [h for h in root.handlers if not isinstance(h.formatter, JsonFormatter)]
    for handler in session_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(root_level)
    for name, (handlers, propagate, disabled, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.disabled = disabled
        logger.setLevel(level)


@pytest.fixture(autouse=True)
def _reset_shutdown() -> Iterator[None]:
    """begin_shutdown() is process-wide: never let one test's shutdown leak into the next."""
    reset_for_tests()
    yield
    reset_for_tests()


@pytest.fixture
def make_settings(example: ModuleType, tmp_path: Path) -> Callable[..., Any]:
    """ExampleSettings with fixed versions; the default database is never touched."""

    def make(**overrides: Any) -> Any:
        values: dict[str, Any] = {
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'untouched.db'}",
            "version_name": "1.4.2",
            "version_sha": "abc123",
            # The tests read the log as soon as a request is answered; the batched writing has
            # tests of its own (test_log_batches.py).
            "log_flush_seconds": 0,
            **overrides,
        }
        return example.ExampleSettings(**values)

    return make


@pytest.fixture
def example_process(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """`example_process(*args, env=...)`: run_example.py (servicekit.server.serve) as a real
    server process on a free port, `args` after the port; stopped at the test's end."""
    group = ProcessGroup("example", tmp_path)
    script = str(Path(__file__).parent / "run_example.py")

    def start(*args: str, env: dict[str, str]) -> ServiceProcess:
        return group.start(lambda port: [sys.executable, script, str(port), *args], env)

    yield start
    group.stop_all()


@pytest.fixture(scope="module")
def example_server(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """run_example.py with its defaults (no drain) on a fresh SQLite database, one per test
    module: for the tests that only send a real server requests."""
    group = ProcessGroup("example", tmp_path_factory.mktemp("example-server"))
    database_url = database_factory.fresh("sqlite", HERE / "example_migrations")
    script = str(HERE / "run_example.py")
    yield group.start(
        lambda port: [sys.executable, script, str(port), "0"], {"DATABASE_URL": database_url}
    )
    group.stop_all()


@pytest.fixture
def start_app(example: ModuleType, started_apps: StartedApps) -> Callable[..., Any]:
    """Builds the example app for some settings, runs its lifespan, returns a client for it."""

    async def start(settings: Any) -> httpx.AsyncClient:
        return await started_apps.client(
            example.create_app(settings), base_url="http://example.test"
        )

    return start


@pytest.fixture
async def client(
    start_app: Callable[..., Any], make_settings: Callable[..., Any]
) -> httpx.AsyncClient:
    """The example service with default settings (its database is never used)."""
    started: httpx.AsyncClient = await start_app(make_settings())
    return started


@pytest.fixture
def migrated_url(database_factory: DatabaseFactory, db_backend: str, example: ModuleType) -> str:
    """A fresh database migrated to head, on SQLite and on PostgreSQL."""
    return database_factory.fresh(db_backend, example.MIGRATIONS_DIR)


class LiveServer:
    """An ASGI app served by a real uvicorn in a thread, on a socket bound before it starts."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_config=None, access_log=False, loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def live_server(example: ModuleType, make_settings: Callable[..., Any]) -> Iterator[Any]:
    """Starts real example servers: `live_server(**settings_overrides)` returns the base URL."""
    servers: list[LiveServer] = []

    def start(**overrides: Any) -> str:
        server = LiveServer(example.create_app(make_settings(**overrides))).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()
