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
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from servicekit.driver.interface import LastAnswer
from servicekit.unavailable import DatabaseUnavailable, as_unavailable


def postgres_statement_failed(error: Exception) -> bool:
    """True when PostgreSQL refused a statement (its transaction is rolled back, nothing was
    written); False when the connection failed, maybe after the server committed."""
    return isinstance(error, asyncpg.PostgresError) and not isinstance(
        error, asyncpg.PostgresConnectionError
    )


# How often the pool looks for callers and statements past their deadline: one timer per pool
# instead of one per statement (a timer per statement is a measurable part of a 1 ms request),
# at the price of deadlines that may run this much late.
SWEEP_SECONDS = 0.1


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

    Deadlines (issue 14), so that a database that stops answering fails requests in seconds:
    a caller waits at most `acquire_timeout` for a connection, and a connection is held at
    most `query_timeout` (a statement, or a write's transaction) before it is terminated, which
    fails what runs on it. Both raise DatabaseUnavailable. When opening a connection fails
    (refused, or no answer within the connect timeout), every caller waiting for one fails at
    once with the same error: they would have waited for a connection that nobody can open.

    A block that ends normally, or with an error PostgreSQL reported, was answered by the
    server: `last_answer` records when (what /readyz reads, servicekit.readiness).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        size: int,
        *,
        acquire_timeout: float = 2.0,
        query_timeout: float = 3.0,
        last_answer: LastAnswer | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a connection pool needs at least one connection")
        self._connect = connect
        self.size = size
        self.acquire_timeout = acquire_timeout
        self.query_timeout = query_timeout
        self.last_answer = last_answer or LastAnswer()
        self._idle: list[Any] = []
        self._count = 0  # connections open or being opened, idle or in use
        self._waiters: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._in_use: dict[Any, float] = {}  # connection -> when it must be given back
        self._expired: set[int] = set()  # ids of connections terminated past their deadline
        self._sweeper: asyncio.TimerHandle | None = None
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
        except BaseException as exc:
            self._count -= 1
            unavailable = _connect_failure(exc)
            if unavailable is None:
                raise
            # Nobody can open a connection now: those who wait for one learn it at once.
            self._fail_waiters(unavailable)
            raise unavailable from exc

    def _fail_waiters(self, error: Exception) -> None:
        while self._waiters:
            waiter, _ = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    async def acquire(self) -> Any:
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        if self._idle:
            return self._lend(self._idle.pop())
        if self._count < self.size:
            return self._lend(await self._new_connection())
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((waiter, time.monotonic() + self.acquire_timeout))
        self._watch()
        try:
            return self._lend(await waiter)
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection just as the caller was cancelled: pass it on.
                self.release(waiter.result(), healthy=True)
            else:
                self._forget(waiter)
            raise

    def _lend(self, connection: Any) -> Any:
        self._in_use[connection] = time.monotonic() + self.query_timeout
        self._watch()
        return connection

    def _forget(self, waiter: asyncio.Future[Any]) -> None:
        for entry in self._waiters:
            if entry[0] is waiter:
                self._waiters.remove(entry)
                return

    def expired(self, connection: Any) -> bool:
        """Whether the pool terminated the connection because it was held past the deadline."""
        return id(connection) in self._expired

    def release(self, connection: Any, *, healthy: bool) -> None:
        """Gives a connection back; `healthy=False` when it may be in an unknown state."""
        self._in_use.pop(connection, None)
        self._expired.discard(id(connection))
        if not healthy or self._closed or connection.is_closed() or connection.is_in_transaction():
            connection.terminate()
            self._count -= 1
            if self._waiters and not self._closed:
                # Someone waits for a connection that no longer exists: open its replacement.
                asyncio.get_running_loop().create_task(self._replace())
            return
        while self._waiters:
            waiter, _ = self._waiters.popleft()
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
            # The server is unreachable (_new_connection failed every waiter already), or
            # something else went wrong: the waiters learn it instead of waiting on.
            self._fail_waiters(exc)
            return
        self.release(connection, healthy=True)

    def _watch(self) -> None:
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        if self._waiters:
            waiting = list(self._waiters)
            self._waiters.clear()
            for waiter, deadline in waiting:
                if waiter.done():
                    continue
                if now < deadline:
                    self._waiters.append((waiter, deadline))
                else:
                    waiter.set_exception(
                        DatabaseUnavailable(
                            f"no database connection was free within {self.acquire_timeout}s"
                        )
                    )
        for connection, deadline in list(self._in_use.items()):
            if now >= deadline and id(connection) not in self._expired:
                # Fails what runs on it now (asyncpg: ConnectionDoesNotExistError), and the
                # server rolls back whatever it had not committed when its socket closes.
                self._expired.add(id(connection))
                connection.terminate()
        if self._waiters or len(self._expired) < len(self._in_use):
            self._watch()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A connection for the block; kept only if the block ended normally or with an error
        that PostgreSQL reported about a statement (the connection itself is fine). A block
        whose connection was held past its deadline raises DatabaseUnavailable."""
        connection = await self.acquire()
        healthy = False
        try:
            yield connection
            healthy = True
        except Exception as exc:
            healthy = postgres_statement_failed(exc)
            if self.expired(connection) and not isinstance(exc, DatabaseUnavailable):
                raise DatabaseUnavailable(
                    f"the database did not answer within {self.query_timeout}s"
                ) from exc
            raise
        finally:
            if healthy:
                self.last_answer.record()
            self.release(connection, healthy=healthy)

    async def close(self) -> None:
        """Closes the idle connections now, the others when they come back."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self._idle = self._idle, []
        self._fail_waiters(RuntimeError("the connection pool is closed"))
        for connection in idle:
            self._count -= 1
            with contextlib.suppress(Exception):
                await connection.close(timeout=5)


def _connect_failure(error: BaseException) -> DatabaseUnavailable | None:
    """A failed connect as DatabaseUnavailable: no answer in time, refused, reset, or the
    server not accepting connections (starting, shutting down)."""
    if isinstance(error, TimeoutError):
        return DatabaseUnavailable("no database connection could be opened in time")
    return as_unavailable(error)
