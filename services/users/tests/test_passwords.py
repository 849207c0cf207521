"""argon2id hashing: the stored form, rehash on login, equal cost for unknown users."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

import httpx
import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import select

from servicekit.admission import Overloaded
from servicekit.db import Database
from users_service.main import create_app
from users_service.models import User
from users_service.passwords import Passwords
from users_service.settings import UsersSettings


async def stored_hash(database_url: str, username: str) -> str:
    database = Database(database_url)
    try:
        async with database.sessionmaker() as session:
            user = await session.scalar(select(User).where(User.username == username))
            assert user is not None
            return user.password_hash
    finally:
        await database.dispose()


async def test_passwords_are_stored_as_argon2id(
    client: httpx.AsyncClient, users: Any, database_url: str
) -> None:
    await users.create("bruce", "correct horse")
    hashed = await stored_hash(database_url, "bruce")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed


async def test_hash_is_upgraded_on_login_when_parameters_change(
    start_app: Any, make_settings: Any, database_url: str
) -> None:
    old = await start_app(make_settings())
    await old.post("/admin/users/", json={"username": "bruce", "password": "pw"})
    before = await stored_hash(database_url, "bruce")
    assert "t=1," in before

    stronger = await start_app(make_settings(argon2_time_cost=2))
    response = await stronger.post("/api/login/", data={"username": "bruce", "password": "pw"})
    assert response.status_code == 200
    after = await stored_hash(database_url, "bruce")
    assert after != before
    assert "t=2," in after
    # and the new hash still works
    again = await stronger.post("/api/login/", data={"username": "bruce", "password": "pw"})
    assert again.status_code == 200


async def test_unknown_user_costs_one_argon2_verification_like_a_wrong_password() -> None:
    settings = UsersSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)
    passwords = Passwords(settings)
    real_hash = await passwords.hash("secret")
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            calls.append(str(hash))
            return super().verify(hash, password)

    passwords.hasher = CountingHasher(time_cost=1, memory_cost=1024, parallelism=1)
    assert await passwords.verify(real_hash, "wrong") is False
    assert await passwords.verify(None, "wrong") is False
    assert await passwords.verify(None, "secret") is False
    assert await passwords.verify(real_hash, "secret") is True
    # every attempt, known user or not, ran exactly one full argon2 verification
    assert len(calls) == 4
    assert calls[1] == calls[2] != real_hash  # the decoy hash
    assert calls[1].startswith("$argon2id$")


def test_default_parameters_are_the_recommended_ones() -> None:
    settings = UsersSettings()
    hasher = Passwords(settings).hasher
    # OWASP's password storage cheat sheet: argon2id, m = 19 MiB, t = 2, p = 1.
    assert hasher.type is Type.ID
    assert hasher.time_cost == 2
    assert hasher.memory_cost == 19 * 1024
    assert hasher.parallelism == 1


async def test_one_address_cannot_fill_the_password_queue(make_settings: Any) -> None:
    passwords = Passwords(make_settings(password_checks_per_client=2))
    stored = passwords.hasher.hash("right")
    flood = [asyncio.create_task(passwords.verify(stored, "wrong", client="a")) for _ in range(2)]
    await asyncio.sleep(0)  # both have taken their place in the queue
    with pytest.raises(Overloaded):
        await passwords.verify(stored, "wrong", client="a")
    # Another address is served meanwhile, and the first one again once its checks are done.
    assert await passwords.verify(stored, "right", client="b")
    assert await asyncio.gather(*flood) == [False, False]
    assert await passwords.verify(stored, "right", client="a")


async def test_a_password_check_waits_for_a_core_only_so_long(make_settings: Any) -> None:
    # A costly hash, more checks than cores, and a wait far shorter than one hash: the checks
    # beyond the cores are refused (a 503), not queued behind the others.
    passwords = Passwords(
        make_settings(
            argon2_time_cost=3, argon2_memory_kib=65536, password_check_wait_seconds=0.001
        )
    )
    stored = passwords.hasher.hash("right")
    cores = os.cpu_count() or 1
    outcomes = await asyncio.gather(
        *(passwords.verify(stored, "right", client=f"c{n}") for n in range(cores + 3)),
        return_exceptions=True,
    )
    assert outcomes.count(True) >= cores
    assert any(isinstance(outcome, Overloaded) for outcome in outcomes)


async def test_a_login_refused_as_overloaded_is_not_counted_as_a_guess(
    started_apps: Any, make_settings: Any
) -> None:
    # The test client's address has a check in progress that never ends, and may have only one:
    # it gets 503 with Retry-After every time, and is never throttled for coming back.
    app = create_app(make_settings(password_checks_per_client=1))
    client = await started_apps.client(app, client_address=("203.0.113.7", 4321))
    passwords: Passwords = app.state.passwords
    passwords.queue._in_progress["203.0.113.7"] = 1
    for _ in range(8):
        answer = await client.post("/api/login/", json={"username": "x", "password": "y"})
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
    passwords.queue._in_progress.clear()
    answer = await client.post("/api/login/", json={"username": "x", "password": "y"})
    assert answer.status_code == 401
