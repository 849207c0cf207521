"""/healthz (liveness, no I/O), /readyz (database, migrations, shutdown) and /admin/version/."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from servicekit import ServiceSpec, create_service_app, load_settings
from servicekit import version as version_module
from servicekit.lifecycle import begin_shutdown
from testkit import DatabaseFactory, free_port

PROBLEM = "application/problem+json"


@pytest.fixture
def unreachable_url() -> str:
    """PostgreSQL on a port where nothing listens."""
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"


async def test_healthz_answers_without_touching_the_database(
    start_app: Callable[..., Any], make_settings: Callable[..., Any], unreachable_url: str
) -> None:
    client = await start_app(make_settings(database_url=unreachable_url))
    begin_shutdown()

    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 503


async def test_readyz_is_ready_when_the_database_is_at_head(
    start_app: Callable[..., Any], make_settings: Callable[..., Any], migrated_url: str
) -> None:
    client = await start_app(make_settings(database_url=migrated_url))

    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


async def test_readyz_is_503_when_migrations_are_behind(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    database_factory: DatabaseFactory,
    db_backend: str,
) -> None:
    client = await start_app(make_settings(database_url=database_factory.empty(db_backend)))

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json() == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "not ready",
        "checks": {"database": "ok", "migrations": "at None, head is 0001"},
        "request_id": response.headers["x-request-id"],
    }


async def test_readyz_stays_ready_when_a_later_release_has_migrated_ahead(
    start_app: Callable[..., Any], make_settings: Callable[..., Any], migrated_url: str
) -> None:
    """A rolling update: the next release's migration Job ran, this version still serves."""
    engine = create_async_engine(migrated_url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = 'f00dbeef0002'"))
    await engine.dispose()
    client = await start_app(make_settings(database_url=migrated_url))

    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "migrations": "ahead: at f00dbeef0002, this version's head is 0001",
    }


async def test_readyz_is_503_when_the_database_is_unreachable(
    start_app: Callable[..., Any], make_settings: Callable[..., Any], unreachable_url: str
) -> None:
    client = await start_app(make_settings(database_url=unreachable_url))

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["detail"] == "not ready"
    assert body["checks"] == {"database": "unreachable: ConnectionRefusedError"}


async def test_readyz_is_503_once_shutdown_begins(
    start_app: Callable[..., Any], make_settings: Callable[..., Any], migrated_url: str
) -> None:
    client = await start_app(make_settings(database_url=migrated_url))
    assert (await client.get("/readyz")).status_code == 200

    begin_shutdown()
    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["checks"] == {
        "shutdown": "in progress",
        "database": "ok",
        "migrations": "ok",
    }


async def test_readyz_without_a_database_checks_only_shutdown(
    make_settings: Callable[..., Any],
) -> None:
    app = create_service_app(
        make_settings(), ServiceSpec(title="No DB", description="", package_version="1.0")
    )
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://nodb.test"
        ) as client,
    ):
        ready = await client.get("/readyz")
        begin_shutdown()
        stopping = await client.get("/readyz")

    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": {}})
    assert (stopping.status_code, stopping.json()["checks"]) == (503, {"shutdown": "in progress"})


async def test_version_comes_from_the_environment(
    example: Any,
    start_app: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("VERSION_NAME", "v2.0.1")
    monkeypatch.setenv("VERSION_SHA", "0123abcd")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    client = await start_app(load_settings(example.ExampleSettings))

    response = await client.get("/admin/version/")

    assert response.status_code == 200
    assert response.json() == {"version": "v2.0.1", "commit": "0123abcd"}
    assert (await client.get("/openapi.json")).json()["info"]["version"] == "v2.0.1"


async def test_version_falls_back_to_the_package_version_without_git(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(version_module, "_from_git", lambda: (None, None))
    client = await start_app(make_settings(version_name=None, version_sha=None))

    response = await client.get("/admin/version/")

    assert response.json() == {"version": "0.7.0", "commit": "unknown"}


def _git(*args: str) -> str | None:
    result = subprocess.run(
        ["git", *args],
        cwd=Path(version_module.__file__).parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


async def test_version_falls_back_to_git_in_a_checkout(
    start_app: Callable[..., Any], make_settings: Callable[..., Any]
) -> None:
    head = _git("rev-parse", "HEAD")
    if head is None:
        pytest.skip("not running from a git checkout")
    described = _git("describe", "--tags", "--dirty")
    version_module._from_git.cache_clear()
    client = await start_app(make_settings(version_name=None, version_sha=None))

    response = await client.get("/admin/version/")

    assert response.json() == {"version": described or "0.7.0", "commit": head}


async def test_version_name_alone_keeps_the_git_commit(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(version_module, "_from_git", lambda: ("v9.9.9-dirty", "f" * 40))
    client = await start_app(make_settings(version_name="v3.1.0", version_sha=None))

    response = await client.get("/admin/version/")

    assert response.json() == {"version": "v3.1.0", "commit": "f" * 40}
