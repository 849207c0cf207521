"""Fixtures: a fresh migrated database per test (SQLite and PostgreSQL), the app in process, and
tokens signed with a key generated for this test session (testkit's `token_signer`, `auth`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tasks_service.main import MIGRATIONS_DIR, create_app
from tasks_service.settings import TasksSettings
from testkit import DatabaseFactory


@pytest.fixture
def database_url(database_factory: DatabaseFactory, db_backend: str) -> str:
    return database_factory.fresh(db_backend, MIGRATIONS_DIR)


@pytest.fixture
def make_client(database_url: str, public_keys_dir: Path) -> Any:
    async def make(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = TasksSettings(
            database_url=database_url, auth_public_keys_dir=public_keys_dir, **overrides
        )
        app = create_app(settings)
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            yield c

    return make


@pytest.fixture
async def client(make_client: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for c in make_client():
        yield c
