"""argon2id password hashing, off the event loop, with equal cost for unknown users, and a
bounded queue: a flood of logins gets fast 503s instead of making every login (and every other
request of the worker) wait behind it."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator

import anyio.to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from servicekit.admission import Admission, Overloaded
from users_service.settings import UsersSettings


class Passwords:
    def __init__(self, settings: UsersSettings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Checked against when the username does not exist, so that a miss costs as much as a
        # wrong password and response times do not reveal which usernames exist.
        self._decoy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        # At most one hash per core at a time: each holds argon2_memory_kib while it runs and the
        # CPU is saturated anyway (with the thread pool's 40 threads, a burst of logins made a
        # worker's memory jump by gigabytes for no extra throughput). The others wait in arrival
        # order, but only password_check_wait_seconds: then Overloaded, a 503 with Retry-After.
        self._cores = Admission(os.cpu_count() or 1, settings.password_check_wait_seconds)
        # One address cannot fill the queue: its checks beyond this many are refused at once,
        # so that a flood from one client leaves room for everybody else's logins.
        self._per_client = settings.password_checks_per_client
        self._in_progress: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def _turn(self, client: str | None) -> AsyncIterator[None]:
        if client is not None:
            if self._in_progress[client] >= self._per_client:
                raise Overloaded(
                    f"{self._per_client} password checks from this address are in progress"
                )
            self._in_progress[client] += 1
        try:
            async with self._cores.turn():
                yield
        finally:
            if client is not None:
                self._in_progress[client] -= 1
                if not self._in_progress[client]:
                    del self._in_progress[client]

    async def hash(self, password: str, *, client: str | None = None) -> str:
        # argon2 takes tens of milliseconds of CPU by design: never on the event loop.
        async with self._turn(client):
            return await anyio.to_thread.run_sync(self.hasher.hash, password)

    async def verify(
        self, stored_hash: str | None, password: str, *, client: str | None = None
    ) -> bool:
        target = stored_hash or self._decoy_hash

        def check() -> bool:
            try:
                return self.hasher.verify(target, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        async with self._turn(client):
            matched = await anyio.to_thread.run_sync(check)
        return matched and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        return self.hasher.check_needs_rehash(stored_hash)
