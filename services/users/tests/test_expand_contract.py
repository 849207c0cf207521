"""Expand/contract: the SQL the previous release of the users service sent still runs on a
database migrated to this head (testkit.release_statements, docs/migrations.md).

`release_statements/<dialect>.json` holds what the release sent while it served the workload
below. To record the current release (when one is cut, so that the next one is held to it):

    RECORD_RELEASE_STATEMENTS=1 .venv/bin/pytest -n 0 -p no:randomly \\
        services/users/tests/test_expand_contract.py -k record
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from testkit.release_statements import ReleaseRecordings, Statement, record_workload
from users_service import __version__
from users_service.main import MIGRATIONS_DIR, create_app
from users_service.settings import UsersSettings

RELEASE = ReleaseRecordings(
    Path(__file__).parent / "release_statements", MIGRATIONS_DIR, __version__
)


async def workload(make_settings: Callable[..., UsersSettings]) -> list[Statement]:
    """Every kind of statement the service sends: accounts created by an admin and by sign-up,
    logins right and wrong, the OAuth2 grant, /api/me/, a rehash at login, a deletion."""

    async def first(client: httpx.AsyncClient) -> None:
        created = await client.post("/admin/users/", json={"username": "bruce", "password": "pw-1"})
        assert created.status_code == 201, created.text
        signed = await client.post("/api/users/", data={"username": "new", "password": "long-pw-1"})
        assert signed.status_code == 201, signed.text
        login = await client.post("/api/login/", data={"username": "bruce", "password": "pw-1"})
        token = login.json()["Authorized"]
        assert (await client.get("/api/me/", headers={"Authorization": token})).status_code == 200
        wrong = await client.post("/api/login/", data={"username": "bruce", "password": "no"})
        assert wrong.status_code == 401
        grant = await client.post("/api/token", data={"username": "new", "password": "long-pw-1"})
        assert grant.status_code == 200
        deleted = await client.delete(f"/admin/users/{signed.json()['id']}/")
        assert deleted.status_code == 204

    async def rehash(client: httpx.AsyncClient) -> None:
        login = await client.post("/api/login/", data={"username": "bruce", "password": "pw-1"})
        assert login.status_code == 200

    statements = await record_workload(create_app(make_settings(signup_enabled=True)), first)
    # Served again at a new argon2 cost: the login rehashes the password (an UPDATE).
    return statements + await record_workload(create_app(make_settings(argon2_time_cost=2)), rehash)


if os.environ.get("RECORD_RELEASE_STATEMENTS"):

    async def test_record_release_statements(
        make_settings: Callable[..., UsersSettings], db_backend: str
    ) -> None:
        RELEASE.save(db_backend, await workload(make_settings))


async def test_previous_release_statements_run_on_this_schema(
    database_url: str, db_backend: str
) -> None:
    await RELEASE.check(db_backend, database_url, at_least=8)


@pytest.mark.parametrize(
    ("change", "breaks_on"),
    [
        ("ALTER TABLE users RENAME COLUMN password_hash TO secret_hash", "password_hash"),
        ("ALTER TABLE users ADD COLUMN email VARCHAR(200) NOT NULL DEFAULT ''", None),
        ("ALTER TABLE users ADD COLUMN email VARCHAR(200)", None),
    ],
)
async def test_a_contracting_change_fails_the_replay(
    database_url: str, db_backend: str, change: str, breaks_on: str | None
) -> None:
    """The check can fail: a rename (contract) breaks the previous release; added columns with a
    default or allowing NULL (expand) do not."""
    await RELEASE.check_change(db_backend, database_url, [change], breaks_on=breaks_on)
