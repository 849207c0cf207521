"""argon2id password hashing, off the event loop, with equal cost for unknown users."""

from __future__ import annotations

import os
import secrets

import anyio
import anyio.to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

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
        # At most one hash per core at a time. Each takes argon2_memory_kib (64 MiB by default)
        # while it runs, and the CPU is saturated anyway: with the thread pool's default of 40,
        # a burst of logins made a worker's memory jump by gigabytes for no extra throughput.
        # Created on first use, inside the event loop.
        self._limiter: anyio.CapacityLimiter | None = None

    def _slots(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(os.cpu_count() or 1)
        return self._limiter

    async def hash(self, password: str) -> str:
        # argon2 takes tens of milliseconds of CPU by design: never on the event loop.
        return await anyio.to_thread.run_sync(self.hasher.hash, password, limiter=self._slots())

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        target = stored_hash or self._decoy_hash

        def check() -> bool:
            try:
                return self.hasher.verify(target, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        matched = await anyio.to_thread.run_sync(check, limiter=self._slots())
        return matched and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        return self.hasher.check_needs_rehash(stored_hash)
