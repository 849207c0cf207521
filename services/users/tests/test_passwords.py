"""argon2id hashing: the stored form, rehash on login, equal cost for unknown users."""

from __future__ import annotations

from typing import Any

import httpx
from argon2 import PasswordHasher
from sqlalchemy import select

from servicekit.db import Database
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
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
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
    assert hasher.time_cost == 3
    assert hasher.memory_cost == 65536
    assert hasher.parallelism == 4
