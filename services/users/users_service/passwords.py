"""argon2id password hashing, off the event loop, with equal cost for unknown users, behind a
short fair queue (users_service.check_queue): a flood of logins gets fast 503s instead of making
every login (and every other request of the worker) wait behind it."""

from __future__ import annotations

import secrets
import time

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from servicekit.cpus import available_cores
from users_service.check_queue import CheckQueue
from users_service.heap import release_large_blocks
from users_service.settings import UsersSettings


class Passwords:
    def __init__(self, settings: UsersSettings) -> None:
        if settings.argon2_release_memory:
            # Before the first hash: glibc's threshold rises at the first free of a block.
            release_large_blocks()
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Checked against when the username does not exist, so that a miss costs as much as a
        # wrong password and response times do not reveal which usernames exist. Timed: the
        # queue's first estimate of what a check takes.
        started = time.perf_counter()
        self._decoy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        # One check per core at a time: each holds argon2_memory_kib while it runs and the CPU
        # is saturated anyway (with the default thread pool's 40 threads, a burst of logins made
        # a worker's memory jump by gigabytes for no extra throughput). The cores this process
        # may use, not the node's: a pod limited to one CPU runs one check at a time.
        self.queue = CheckQueue(
            cores=available_cores(),
            wait_seconds=settings.password_check_wait_seconds,
            per_client=settings.password_checks_per_client,
            niceness=settings.password_check_niceness,
            first_estimate_seconds=time.perf_counter() - started,
        )

    def close(self) -> None:
        self.queue.close()

    async def hash(self, password: str, *, client: str | None = None) -> str:
        # argon2 takes tens of milliseconds of CPU by design: never on the event loop.
        return await self.queue.run(client, lambda: self.hasher.hash(password))

    async def verify(
        self, stored_hash: str | None, password: str, *, client: str | None = None
    ) -> bool:
        target = stored_hash or self._decoy_hash

        def check() -> bool:
            try:
                return self.hasher.verify(target, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        matched = await self.queue.run(client, check) and stored_hash is not None
        if not matched:
            self.queue.failed(client)
        return matched

    def needs_rehash(self, stored_hash: str) -> bool:
        return self.hasher.check_needs_rehash(stored_hash)
