"""Group commit: writes that arrive while a group is being committed form the next group."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Items that arrive while a group is being committed form the next group (group commit).

    A service's single-row writes (say, posting a thought) are independent, each in a
    transaction of its own. Committed one at a time, each pays a whole commit while holding
    the locks it needs: on PostgreSQL the thoughts service's insert-order lock serialises
    them, so nothing overlaps; on SQLite the database has one write lock, which two worker
    processes queue for. Under load, a group of N writes pays for one. Each write is still
    acknowledged only after the commit that made it durable. If a group fails, its items are
    retried one by one, so that a bad one fails alone, unless `retryable(error)` says the group
    may have been committed after all (a connection lost during the commit): then every item
    fails with that error rather than risk writing it twice. Without concurrent writes a group
    has one member and waits for nothing.
    """

    def __init__(
        self,
        commit_group: Callable[[list[T]], Awaitable[list[R | BaseException]]],
        one_by_one: Callable[[list[T]], Awaitable[list[R | BaseException]]],
        max_group: int = 256,
        retryable: Callable[[Exception], bool] = lambda _error: True,
    ) -> None:
        self._commit_group = commit_group
        self._one_by_one = one_by_one
        self._retryable = retryable
        self._max_group = max_group
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None:
            # Kept referenced: the loop holds tasks only weakly.
            self._task = asyncio.get_running_loop().create_task(self._flush())
        try:
            return await future
        except asyncio.CancelledError:
            # The caller gave up (its request ended) before its item went out: never write it
            # later (issue 14). One already being committed stands.
            self._pending = [entry for entry in self._pending if entry[1] is not future]
            raise

    async def _flush(self) -> None:
        try:
            while self._pending:
                group = self._pending[: self._max_group]
                del self._pending[: self._max_group]
                items = [item for item, _ in group]
                outcomes: list[R | BaseException]
                try:
                    outcomes = await self._commit_group(items)
                except Exception as exc:
                    if self._retryable(exc):
                        outcomes = await self._one_by_one(items)
                    else:
                        outcomes = [exc] * len(items)
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():
                        continue  # the caller gave up (cancelled); the write stands
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        except BaseException as exc:
            # Cancelled (shutdown) or a bug: the fate of the pending writes is unknown.
            for _, future in self._pending:
                if not future.done():
                    future.set_exception(exc)
            self._pending.clear()
            raise
        finally:
            self._task = None
