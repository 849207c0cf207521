"""ConnectionPool: the hand-written pool of asyncpg connections that the hot statements use.

Kept instead of asyncpg's own pool because it costs less than half the CPU per statement. Measured
with bench/driver_pool.py (asyncpg 0.32, uvloop, 32 tasks on 8 connections, each taking a
connection, running one prepared one-row statement and giving it back; best of 3 interleaved
3-second runs on the 2-core benchmark machine, 2026-12-04):

    servicekit ConnectionPool               40 us of CPU per statement   4,890 statements/s
    asyncpg create_pool (reset=no-op)       88 us                         2,087
    asyncpg create_pool (default reset)    129 us                         1,368

`create_pool(reset=...)` (asyncpg 0.30+) removes the reset query's round trip, not the rest:
a queue, a proxy object per acquire, a timeout task around each release.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg


def postgres_statement_failed(error: Exception) -> bool:
    """True when PostgreSQL refused a statement (its transaction is rolled back, nothing was
    written); False when the connection failed, maybe after the server committed."""
    return isinstance(error, asyncpg.PostgresError) and not isinstance(
        error, asyncpg.PostgresConnectionError
    )


class ConnectionPool:
    """At most `size` asyncpg connections, handed to one user at a time.

    asyncpg's own pool costs ~70 microseconds of CPU per acquire and release on the benchmark's
    machine (a queue, a proxy object, a reset with a timeout task), more than running a one-row
    query on an idle connection (~50). A hot statement needs none of that: this pool keeps idle
    connections in a list, queues callers in arrival order when all are busy, and throws away a
    connection that may be in an unknown state (a connection error, a cancelled query, a
    transaction left open); the next caller who finds none idle opens a new one. Connections
    are opened on demand; `open()` opens the first, so that a wrong URL fails at start-up.
    Nothing is reset between users: the service's statements leave no session state behind.
    """

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int) -> None:
        if size < 1:
            raise ValueError("a connection pool needs at least one connection")
        self._connect = connect
        self.size = size
        self._idle: list[Any] = []
        self._count = 0  # connections open or being opened, idle or in use
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def count(self) -> int:
        return self._count

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def open(self) -> None:
        self.release(await self._new_connection(), healthy=True)

    async def _new_connection(self) -> Any:
        self._count += 1
        try:
            return await self._connect()
        except BaseException:
            self._count -= 1
            raise

    async def acquire(self) -> Any:
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        if self._idle:
            return self._idle.pop()
        if self._count < self.size:
            return await self._new_connection()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection just as the caller was cancelled: pass it on.
                self.release(waiter.result(), healthy=True)
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self, connection: Any, *, healthy: bool) -> None:
        """Gives a connection back; `healthy=False` when it may be in an unknown state."""
        if not healthy or self._closed or connection.is_closed() or connection.is_in_transaction():
            connection.terminate()
            self._count -= 1
            if self._waiters and not self._closed:
                # Someone waits for a connection that no longer exists: open its replacement.
                asyncio.get_running_loop().create_task(self._replace())
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    async def _replace(self) -> None:
        if self._closed or self._count >= self.size or not self._waiters:
            return  # somebody else's connection came back or was opened meanwhile
        try:
            connection = await self._new_connection()
        except Exception as exc:
            # The server is unreachable: the first waiter learns why instead of waiting on.
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                    break
            return
        self.release(connection, healthy=True)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A connection for the block; kept only if the block ended normally or with an error
        that PostgreSQL reported about a statement (the connection itself is fine)."""
        connection = await self.acquire()
        healthy = False
        try:
            yield connection
            healthy = True
        except Exception as exc:
            healthy = postgres_statement_failed(exc)
            raise
        finally:
            self.release(connection, healthy=healthy)

    async def close(self) -> None:
        """Closes the idle connections now, the others when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the connection pool is closed"))
        self._waiters.clear()
        for connection in idle:
            self._count -= 1
            with contextlib.suppress(Exception):
                await connection.close(timeout=5)
