"""Account operations: create, find, delete, and the login check with rehash-on-login."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.admission import Overloaded
from users_service.models import User
from users_service.passwords import Passwords
from users_service.throttle import CountersUnavailable, LoginThrottle, Throttled
from users_service.usernames import lookup_key, new_username, username_key

__all__ = ["CountersUnavailable", "LoginRefused", "Throttled", "UsernameTaken"]


class UsernameTaken(Exception):
    pass


class LoginRefused(Exception):
    pass


async def create_user(
    session: AsyncSession,
    passwords: Passwords,
    username: str,
    password: str,
    *,
    client: str | None = None,
) -> User:
    """Raises InvalidUsername (users_service.usernames) or UsernameTaken. `client`: the address
    asking (public sign-up), whose password checks in progress are bounded."""
    username = new_username(username)
    user = User(
        username=username,
        username_key=username_key(username),
        password_hash=await passwords.hash(password, client=client),
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise UsernameTaken(username) from None
    return user


async def find_user(session: AsyncSession, username: str) -> User | None:
    """The account a name means: its exact row first (every row older than the keys has one),
    else the row holding its key, so `BRUCE` and full-width `bruce` log in as `bruce`."""
    user = await session.scalar(select(User).where(User.username == username))
    if user is not None:
        return user
    key = lookup_key(username)
    if key is None:
        return None
    return await session.scalar(select(User).where(User.username_key == key))


async def delete_user(session: AsyncSession, user_id: int) -> bool:
    result = await session.execute(delete(User).where(User.id == user_id))
    await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def check_login(
    session: AsyncSession,
    passwords: Passwords,
    throttle: LoginThrottle,
    *,
    username: str,
    password: str,
    address: str,
) -> User:
    """Returns the user, or raises Throttled / LoginRefused (see users_service.throttle), or
    Overloaded (a 503) when the password could not be checked in time."""
    user = await find_user(session, username)
    # Counted by the account's id, so that only its own success clears its counters; a name
    # without an account by its folded form, so that guessing it costs what guessing one does.
    account = f"id:{user.id}" if user else f"name:{lookup_key(username) or username.casefold()}"
    attempt = await throttle.begin(account, address)
    try:
        matched = await passwords.verify(
            user.password_hash if user else None, password, client=address
        )
    except Overloaded:
        await throttle.abandoned(attempt)
        raise
    if not matched:
        await throttle.failed(attempt)
        raise LoginRefused
    assert user is not None
    await throttle.succeeded(attempt)
    if passwords.needs_rehash(user.password_hash):
        try:
            user.password_hash = await passwords.hash(password)
        except Overloaded:
            return user  # the login stands; the hash is renewed at a quieter login
        await session.commit()
    return user
