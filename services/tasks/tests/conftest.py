"""Fixtures: a fresh migrated database per test (SQLite and PostgreSQL), the app in process, and
tokens signed with a key generated for this test session (never committed)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tasks_service.main import MIGRATIONS_DIR, create_app
from tasks_service.settings import TasksSettings
from testkit import DatabaseFactory

KID = "tasks-test-key"


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory, signing_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path_factory.mktemp("public-keys")
    (path / f"{KID}.pub.pem").write_bytes(
        signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture(scope="session")
def auth(signing_key: rsa.RSAPrivateKey) -> Callable[[str], dict[str, str]]:
    def headers(username: str) -> dict[str, str]:
        now = int(time.time())
        claims = {"username": username, "iss": "mythoughts-users", "aud": "mythoughts"}
        token = jwt.encode(
            {**claims, "iat": now, "exp": now + 600},
            signing_key,
            algorithm="RS256",
            headers={"kid": KID},
        )
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def database_url(database_factory: DatabaseFactory, db_backend: str) -> str:
    return database_factory.fresh(db_backend, MIGRATIONS_DIR)


@pytest.fixture
def make_client(database_url: str, keys_dir: Path) -> Any:
    async def make(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = TasksSettings(
            database_url=database_url, auth_public_keys_dir=keys_dir, **overrides
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
