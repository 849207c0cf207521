"""Fixtures for the thoughts service: a fresh migrated database per test (SQLite and PostgreSQL),
the app in-process (testkit's StartedApps, as the other suites), and access tokens signed with a
key generated for this test session (testkit's `token_signer`, `auth`, `public_keys_dir`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from testkit import DatabaseFactory, StartedApps
from thoughts_service.main import MIGRATIONS_DIR, create_app
from thoughts_service.models import Thought
from thoughts_service.settings import ThoughtsSettings


@pytest.fixture
def database_url(database_factory: DatabaseFactory, db_backend: str) -> str:
    return database_factory.fresh(db_backend, MIGRATIONS_DIR)


@pytest.fixture
def make_settings(database_url: str, public_keys_dir: Path) -> Callable[..., ThoughtsSettings]:
    def make(**overrides: Any) -> ThoughtsSettings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "auth_public_keys_dir": public_keys_dir,
            "version_name": "0.1.0",
            "version_sha": "test",
            "db_pool_size": 2,
            **overrides,
        }
        return ThoughtsSettings(**values)

    return make


@pytest.fixture
async def started(
    started_apps: StartedApps, make_settings: Callable[..., ThoughtsSettings]
) -> tuple[FastAPI, httpx.AsyncClient]:
    """The app, started (lifespan included) as every suite starts its apps, and its client."""
    application = create_app(make_settings())
    http = await started_apps.client(application, base_url="http://thoughts.test")
    return application, http


@pytest.fixture
def app(started: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return started[0]


@pytest.fixture
def client(started: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return started[1]


@pytest.fixture
def count_rows(app: FastAPI) -> Callable[[], Any]:
    """Rows in the table, read directly: what the API says is no evidence about storage."""

    async def count() -> int:
        async with app.state.db.sessionmaker() as session:
            total: int = await session.scalar(select(func.count()).select_from(Thought))
            return total

    return count


@pytest.fixture
def post_thoughts(client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]) -> Any:
    """`await post_thoughts("bruce", ["one", "two"])` -> the created thoughts."""

    async def post(username: str, texts: list[str]) -> list[dict[str, Any]]:
        created = []
        for text in texts:
            response = await client.post(
                "/api/me/thoughts/", json={"text": text}, headers=auth(username)
            )
            assert response.status_code == 201, response.text
            created.append(response.json())
        return created

    return post


def _assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert isinstance(body.get("detail"), str), body
    assert body["detail"], body
    assert "Traceback" not in response.text
    if field is not None:
        fields = [error["field"] for error in body["errors"]]
        assert field in fields, body
        assert field in body["detail"]


@pytest.fixture(scope="session")
def assert_problem() -> Callable[..., None]:
    """`assert_problem(response, 400, "text")`: an RFC 9457 problem with a readable detail that,
    for validation errors, names the field."""
    return _assert_problem


@pytest.fixture
def insert_thoughts(app: FastAPI) -> Callable[..., Any]:
    """`await insert_thoughts([("bruce", "text"), ...])` -> ids: fast seeding, bypassing HTTP."""

    async def insert(rows: list[tuple[str, str]]) -> list[int]:
        async with app.state.db.sessionmaker() as session:
            thoughts = [Thought(username=username, text=text) for username, text in rows]
            session.add_all(thoughts)
            await session.commit()
            return [thought.id for thought in thoughts]

    return insert
