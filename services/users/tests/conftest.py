"""Fixtures for the users service: a fresh migrated database per test, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from servicekit.db import Database
from testkit import DatabaseFactory, StartedApps
from users_service.accounts import create_user
from users_service.main import MIGRATIONS_DIR, create_app
from users_service.passwords import Passwords
from users_service.settings import UsersSettings
from users_service.signing import generate_key

# Cheap argon2 parameters keep the suite fast; production defaults are tested in test_passwords.
FAST_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 1024,
    "argon2_parallelism": 1,
}


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signing key generated at test time, never committed."""
    path = tmp_path_factory.mktemp("keys")
    generate_key(path, "test-key-1")
    return path


@pytest.fixture
def database_url(database_factory: DatabaseFactory, db_backend: str) -> str:
    return database_factory.fresh(db_backend, MIGRATIONS_DIR)


@pytest.fixture
def make_settings(database_url: str, keys_dir: Path) -> Callable[..., UsersSettings]:
    def make(**overrides: Any) -> UsersSettings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "jwt_keys_dir": keys_dir,
            "version_name": "0.1.0",
            "version_sha": "test",
            **FAST_ARGON2,
        }
        values.update(overrides)
        return UsersSettings(**values)

    return make


@pytest.fixture
def start_app(started_apps: StartedApps) -> Callable[[UsersSettings], Any]:
    """`await start_app(settings)`: a client of a started users app (closed after the test)."""

    async def start(settings: UsersSettings) -> httpx.AsyncClient:
        return await started_apps.client(create_app(settings), base_url="http://users.test")

    return start


@pytest.fixture
async def client(
    start_app: Callable[[UsersSettings], Any], make_settings: Callable[..., UsersSettings]
) -> httpx.AsyncClient:
    result: httpx.AsyncClient = await start_app(make_settings())
    return result


class UsersApi:
    """Small helpers over the HTTP API, so tests read like the contract."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create(self, username: str, password: str) -> dict[str, Any]:
        response = await self.client.post(
            "/admin/users/", json={"username": username, "password": password}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def login(self, username: str, password: str) -> httpx.Response:
        return await self.client.post(
            "/api/login/", data={"username": username, "password": password}
        )

    async def token(self, username: str, password: str) -> str:
        response = await self.login(username, password)
        assert response.status_code == 200, response.text
        authorized: str = response.json()["Authorized"]
        assert authorized.startswith("Bearer ")
        return authorized.removeprefix("Bearer ")


@pytest.fixture
def users(client: httpx.AsyncClient) -> UsersApi:
    return UsersApi(client)


async def insert_legacy_users(url: str, rows: list[tuple[str, str]]) -> None:
    """Rows written before migration 0002, as the 0001 schema allowed them."""
    database = Database(url)
    hasher = PasswordHasher(
        time_cost=FAST_ARGON2["argon2_time_cost"],
        memory_cost=FAST_ARGON2["argon2_memory_kib"],
        parallelism=FAST_ARGON2["argon2_parallelism"],
    )
    try:
        async with database.engine.begin() as connection:
            for username, password in rows:
                await connection.execute(
                    text(
                        "INSERT INTO users (username, password_hash, creation) "
                        "VALUES (:u, :h, CURRENT_TIMESTAMP)"
                    ),
                    {"u": username, "h": hasher.hash(password)},
                )
    finally:
        await database.dispose()


def add_account(settings: UsersSettings, username: str, password: str) -> None:
    """One account in the settings' database, hashed with the settings' argon2 parameters, before
    a server process is started on it (the tests that measure a real server's logins)."""

    async def add() -> None:
        database = Database(settings.database_url)
        passwords = Passwords(settings)
        try:
            async with database.sessionmaker() as session:
                await create_user(session, passwords, username, password)
        finally:
            passwords.close()
            await database.dispose()

    asyncio.run(add())
