"""Usernames that look like someone else's (users_service.usernames): refused or taken; rows
older than the rule keep working (migration 0002)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from servicekit.db import Database
from servicekit.migrations import upgrade
from testkit import DatabaseFactory
from users_service.main import MIGRATIONS_DIR
from users_service.models import User
from users_service.usernames import InvalidUsername, new_username, username_key

from .conftest import insert_legacy_users

REFUSED = {
    "zero-width space": "stephen\u200b",
    "byte order mark": "\ufeffbruce",
    "right-to-left override, Cyrillic": "\u202eneh\u0440ets",
    "left-to-right mark": "bru\u200ece",
    "mixed Latin and Cyrillic": "st\u0435phen",
    "all-Cyrillic look-alike of a Latin name": "\u0440\u0430\u0443\u0430",
    "no-break space": "mary\u00a0jane",
    "two spaces": "mary  jane",
}
TAKEN_BY_BRUCE = ["Bruce", "BRUCE", "\uff42\uff52\uff55\uff43\uff45", "\uff22ruce"]


@pytest.mark.parametrize("username", REFUSED.values(), ids=REFUSED.keys())
async def test_invisible_bidi_and_mixed_script_names_are_refused(
    client: httpx.AsyncClient, users: Any, username: str
) -> None:
    response = await client.post("/admin/users/", json={"username": username, "password": "pw"})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert [error["field"] for error in problem["errors"]] == ["username"]
    assert (await users.login(username, "pw")).status_code == 401


@pytest.mark.parametrize("username", TAKEN_BY_BRUCE)
async def test_case_and_width_variants_are_taken(
    client: httpx.AsyncClient, users: Any, username: str
) -> None:
    # Before: `Bruce` and full-width `bruce` (U+FF42...) signed up next to `bruce`.
    await users.create("bruce", "first")
    again = await client.post("/admin/users/", json={"username": username, "password": "x"})
    assert again.status_code == 409, again.text
    assert (await users.login("bruce", "first")).status_code == 200


async def test_signup_refuses_look_alikes_too(start_app: Any, make_settings: Any) -> None:
    client = await start_app(make_settings(signup_enabled=True))
    body = {"username": "stephen", "password": "long enough"}
    assert (await client.post("/api/users/", json=body)).status_code == 201
    for username in ("Stephen", "stephen\u200b", "st\u0435phen", "\uff53tephen"):
        response = await client.post(
            "/api/users/", json={"username": username, "password": "long enough"}
        )
        assert response.status_code in (400, 409), (username, response.text)


async def test_a_name_logs_in_in_any_case_or_width_as_its_account(
    client: httpx.AsyncClient, users: Any
) -> None:
    await users.create("Bruce", "pw")
    for spelling in ("Bruce", "bruce", "BRUCE", "\uff42\uff52\uff55\uff43\uff45"):
        response = await users.login(spelling, "pw")
        assert response.status_code == 200, spelling
    token = await users.token("bruce", "pw")
    me = await client.get("/api/me/", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "Bruce"


async def test_a_name_longer_than_50_once_normalised_is_refused(
    client: httpx.AsyncClient, users: Any
) -> None:
    """U+0958 (Devanagari qa) is two code points in NFC: 50 of them were stored as a name of
    100 (on PostgreSQL past the column), whose tokens every other service refused."""
    for username in ("\u0958" * 50, "a" * 49 + "\u0958"):
        response = await client.post("/admin/users/", json={"username": username, "password": "pw"})
        assert response.status_code == 400, response.text
        (error,) = response.json()["errors"]
        assert error["field"] == "username"
        assert "at most 50" in error["message"]
    response = await client.post(
        "/admin/users/", json={"username": "\u0958" * 25, "password": "pw"}
    )
    assert response.status_code == 201, response.text
    assert len(response.json()["username"]) == 50


def test_the_key_follows_rfc_8265() -> None:
    assert username_key("Mary O'Neil") == "mary o'neil"
    assert username_key("\uff22ruce") == "bruce"
    assert new_username("\uff22ruce") == "Bruce"  # stored width-mapped, case kept
    allowed_names = ("Jos\u00e9", "\u0418\u0432\u0430\u043d", "\u674e\u5c0f\u9f8d", "\u65e5abc")
    for allowed in allowed_names:
        assert new_username(allowed) == allowed
    with pytest.raises(InvalidUsername, match="U\\+200B"):
        new_username("a\u200bb")


async def _keys(url: str) -> dict[str, str | None]:
    database = Database(url)
    try:
        async with database.sessionmaker() as session:
            users = (await session.scalars(select(User).order_by(User.id))).all()
            return {user.username: user.username_key for user in users}
    finally:
        await database.dispose()


async def test_rows_from_before_the_rule_keep_working(
    database_factory: DatabaseFactory, db_backend: str, start_app: Any, make_settings: Any
) -> None:
    url = database_factory.empty(db_backend)
    await asyncio.to_thread(upgrade, MIGRATIONS_DIR, url, "0001")
    legacy = [("stephen", "one"), ("Stephen", "two"), ("bruce\u200b", "three"), ("Mary", "four")]
    await insert_legacy_users(url, legacy)
    await asyncio.to_thread(upgrade, MIGRATIONS_DIR, url)
    assert await _keys(url) == {
        "stephen": "stephen",
        "Stephen": None,  # its key was taken by the older row
        "bruce\u200b": None,  # no key: a name no new account may have
        "Mary": "mary",
    }
    client = await start_app(make_settings(database_url=url))
    for username, password in legacy:  # each logs in by its exact name, as before
        response = await client.post(
            "/api/login/", data={"username": username, "password": password}
        )
        assert response.status_code == 200, username
    for username in ("STEPHEN", "bruce", "mary"):
        created = await client.post("/admin/users/", json={"username": username, "password": "x"})
        assert created.status_code == (201 if username == "bruce" else 409), username


@pytest.mark.parametrize("username", ["a\x00b", "tab\there", "line\n", "   "])
@pytest.mark.parametrize("path", ["/api/login/", "/admin/users/"])
async def test_a_name_with_control_characters_gets_a_message_not_a_pattern(
    client: httpx.AsyncClient, path: str, username: str
) -> None:
    """Before: "String should match pattern '^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s..." (the site's
    sign-up form showed it under the field)."""
    response = await client.post(path, json={"username": username, "password": "pw"})
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "username"
    assert error["message"] == (
        "a username has a visible character and no control characters (NUL, tab, newline ...)"
    )
