"""Schemathesis over the users OpenAPI schema, in process: no server errors, schema-true answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from servicekit.db import Database
from testkit.contract import run_schemathesis
from users_service.accounts import create_user
from users_service.main import create_app
from users_service.passwords import Passwords
from users_service.settings import UsersSettings
from users_service.signing import load_signing_keys

from .conftest import FAST_ARGON2


async def _seed(settings: UsersSettings) -> None:
    database = Database(settings.database_url)
    try:
        async with database.sessionmaker() as session:
            await create_user(session, Passwords(settings), "schemathesis", "pw")
    finally:
        await database.dispose()


def test_api_conforms_to_its_schema(database_url: str, keys_dir: Path) -> None:
    settings = UsersSettings(
        database_url=database_url,
        jwt_keys_dir=keys_dir,
        signup_enabled=True,
        # Generated data fails logins a lot: keep throttling out of the way of schema checks.
        login_max_failures_per_username=10_000,
        login_max_failures_per_address=100_000,
        **FAST_ARGON2,
    )
    asyncio.run(_seed(settings))
    token = load_signing_keys(keys_dir, None).issue(
        "schemathesis", issuer="mythoughts-users", audience="mythoughts", ttl_seconds=600
    )
    exercised = run_schemathesis(
        create_app(settings),
        headers={"Authorization": f"Bearer {token}"},
        # A new username's RFC 8265 and script rules are no JSON Schema (test_usernames.py).
        rules_beyond_the_schema=frozenset({"POST /api/users/", "POST /admin/users/"}),
    )
    assert "POST /api/login/" in exercised
    assert "POST /admin/users/" in exercised
    assert len(exercised) >= 10
