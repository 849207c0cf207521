"""Accounts in bulk, for benchmarks and load tests (never for production data).

Every account gets the same password, and so may get the same hash string: argon2 is slow by
design (tens of milliseconds and 64 MiB per hash at the default cost), so hashing a thousand
passwords one by one would take minutes. `shared_password_hash` hashes the common password once,
with the cost settings the server runs with, and `load_users` stores that one string for every
account. Verification still works (an argon2 hash carries its own salt and parameters), the
server sees no reason to rehash at login, and each login still costs one full verification, as
in production. Two accounts sharing a salt is harmless here and unthinkable for real users.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select

from servicekit.db import Database
from users_service.models import User, utcnow
from users_service.passwords import Passwords
from users_service.settings import UsersSettings
from users_service.usernames import lookup_key

_CHUNK = 500  # usernames per IN (...) look-up and per INSERT batch


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def shared_password_hash(password: str, settings: UsersSettings) -> str:
    """One argon2id hash of `password` at the settings' cost, to be stored for many accounts."""
    return Passwords(settings).hasher.hash(password)


@dataclass(frozen=True)
class UsersLoadResult:
    existing: int  # of the asked-for usernames, how many had an account already
    inserted: int


async def load_users(
    database_url: str, usernames: Sequence[str], password_hash: str
) -> UsersLoadResult:
    """Creates the accounts that do not exist yet; existing ones are left as they are."""
    database = Database(database_url)
    try:
        async with database.engine.begin() as connection:
            existing: set[str] = set()
            for chunk in _chunks(usernames):
                found = await connection.scalars(
                    select(User.username).where(User.username.in_(chunk))
                )
                existing.update(found)
            missing = [name for name in dict.fromkeys(usernames) if name not in existing]
            now = utcnow()
            keys: dict[str, str | None] = {}
            seen: set[str | None] = {None}
            for name in missing:  # the first of names that share a key takes it (as 0002 did)
                key = lookup_key(name)
                keys[name] = key if key not in seen else None
                seen.add(key)
            for chunk in _chunks(missing):
                await connection.execute(
                    insert(User),
                    [
                        {
                            "username": name,
                            "username_key": keys[name],
                            "password_hash": password_hash,
                            "creation": now,
                        }
                        for name in chunk
                    ],
                )
    finally:
        await database.dispose()
    return UsersLoadResult(len(existing), len(missing))
