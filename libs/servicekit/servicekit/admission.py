"""A bounded number of expensive operations at once, each waiting its turn only so long.

A search that may scan, run by every client at once, would otherwise queue without limit behind
the few threads or connections that run it, and every request behind it would wait as long as
the whole queue. `Admission` lets `limit` run at a time; the others wait in arrival order for at
most `wait_seconds`, then get `Overloaded`, which the kit answers as 503 with `Retry-After`
(servicekit.problems): a fast, honest "not now" instead of a slow answer for everybody.
`QueueLimit` bounds how many wait instead, and refuses the next one at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Iterator


class Overloaded(Exception):
    """No turn came within the wait: too many expensive operations are running already."""

    retry_after_seconds = 1


class Admission:
    def __init__(self, limit: int, wait_seconds: float) -> None:
        if limit < 1:
            raise ValueError("an admission needs a limit of at least one")
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._running = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def _enter(self) -> None:
        if self._running < self.limit and not self.waiting:
            self._running += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            # The turn is handed over by `_leave` (the count stays up): no race with newcomers.
            await asyncio.wait_for(asyncio.shield(waiter), self.wait_seconds)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():
                self._leave()  # handed a turn just as the wait ended: pass it on
            else:
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise Overloaded(
                    f"{self.limit} operations of this kind are running and none ended within "
                    f"{self.wait_seconds:g}s"
                ) from None
            raise

    def _leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the turn passes on: `_running` is unchanged
                return
        self._running -= 1

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The block runs once a turn is free; Overloaded if none was within the wait."""
        await self._enter()
        try:
            yield
        finally:
            self._leave()


class QueueLimit:
    """At most `limit` operations waiting for one resource at once; one more is refused at once.

    Where `Admission` bounds how long a request waits for a turn, this bounds how many wait: for
    work that queues behind one serialised resource (the posts of a worker waiting for their
    commit behind the database's one write lock), so that a sustained overload is answered
    with an immediate 503 and `Retry-After` (Overloaded) instead of a queue, and a latency, that
    grow for as long as the overload lasts.
    """

    def __init__(self, limit: int, what: str) -> None:
        if limit < 1:
            raise ValueError("a queue limit needs a limit of at least one")
        self.limit = limit
        self.what = what
        self._queued = 0

    @contextlib.contextmanager
    def place(self) -> Iterator[None]:
        """The block runs holding a place in the queue; Overloaded at once when it is full."""
        if self._queued >= self.limit:
            raise Overloaded(
                f"{self.limit} {self.what} are already waiting in this process; nothing was stored"
            )
        self._queued += 1
        try:
            yield
        finally:
            self._queued -= 1
