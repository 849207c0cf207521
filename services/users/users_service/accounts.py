"""Account operations: create, find, delete, and the login check with rehash-on-login."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.admission import Overloaded
from users_service.models import User, utcnow
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
    if user is None:
        key = lookup_key(username)
        if key is None:
            return None
        user = await session.scalar(select(User).where(User.username_key == key))
    return user if user is not None and user.deleted_at is None else None


async def find_user_by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.scalar(select(User).where(User.id == user_id, User.deleted_at.is_(None)))


# Not an argon2 hash: no password verifies against it.
DELETED_PASSWORD_HASH = "!deleted"  # noqa: S105 - a marker, not a secret


async def delete_user(session: AsyncSession, user_id: int) -> str | None:
    """Marks the account deleted and returns its name (None when there is no such account).
    The row stays: its name stays taken (migration 0003)."""
    user = await find_user_by_id(session, user_id)
    if user is None:
        return None
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(deleted_at=utcnow(), password_hash=DELETED_PASSWORD_HASH)
    )
    await session.commit()
    return user.username


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
    # A login that the password queue would refuse anyway costs no lookup and no counter.
    passwords.queue.refuse_now(address)
    user = await find_user(session, username)
    # The connection goes back to the pool while the password waits for its check: a flood of
    # logins held every connection of the pool, and the queue behind them was first come, first
    # served, ahead of the password queue's order (users_service.check_queue).
    await session.commit()
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
