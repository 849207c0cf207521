"""The database drivers' own connections, for the few statements a service runs on every request.

SQLAlchemy builds, checks and compiles statements, maps rows and manages sessions; the cost is
fine for most code, and dominant on a hot path whose query takes the database microseconds. The
benchmark (bench/README.md) measured, per request on a 2-core machine: a session or even a bare
`AsyncEngine.connect()` (pool checkout with its pre-ping, which asyncpg runs as BEGIN, ping,
ROLLBACK) took several times the CPU of asyncpg's own pool running the statement itself. So a
service can compile its hot statements once with SQLAlchemy and run them here:

- PostgreSQL: up to `size` asyncpg connections in a minimal pool (ConnectionPool; statements
  are prepared and cached by asyncpg). A broken connection is replaced when next needed.
- SQLite: plain `sqlite3` connections (read-only, autocommit), one per reading thread. No
  statement runs on the event loop: an indexed read takes SQLite 10 to 800 microseconds, but a
  search of a thousand common characters took it seconds, and run inline that stopped every
  other request of the process for as long (issue 14). Reads run in a reader thread (one
  thread switch, not aiosqlite's two); a read that runs longer than the statement timeout is
  interrupted (SQLite's progress handler). Writes go to one connection in a thread of its own,
  so that waiting for another process's write lock (busy_timeout) never blocks the loop either.

A read that may be slow (a scan, a search) takes a turn of the pool's `slow_queries`
(servicekit.admission): at most so many run at once per process, in threads (SQLite) or
connections (PostgreSQL) of their own; the others wait their turn only so long, then raise
Overloaded (503 with Retry-After), so that a burst of them never queues without limit nor takes
every connection or core from the indexed reads.

Writes are committed in groups on both (GroupCommit).

Both offer `fetch(sql, arguments)` and `write(sql, arguments)`, with SQL compiled for the
driver's parameter style (`$1` for asyncpg, `?` for sqlite3). A statement that runs longer than
the pool's `statement_timeout` raises StatementTimeout. On PostgreSQL that is the server's own
`statement_timeout` setting of the pool's connections: asyncpg's client-side timeout costs a
timer per query, a measurable part of a 1 ms request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.engine import URL

from servicekit.admission import Admission

Row = Sequence[Any]


class StatementTimeout(Exception):
    """A statement ran longer than the timeout it was given and was cancelled."""


class DriverPool(Protocol):
    async def fetch(
        self, sql: str, arguments: Sequence[Any], *, may_be_slow: bool = False
    ) -> list[Row]:
        """The rows of a read. `may_be_slow`: the statement may run long (a scan), so it waits
        for a turn of the pool's slow queries (Overloaded when none comes in time)."""
        ...

    async def write(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        """Runs one statement in its own transaction; the rows it returns (RETURNING)."""
        ...

    async def close(self) -> None: ...


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
        return await future

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


Statement = tuple[str, Sequence[Any]]
Outcome = list[Row] | BaseException


def postgres_statement_failed(error: Exception) -> bool:
    """True when PostgreSQL refused a statement (its transaction is rolled back, nothing was
    written); False when the connection failed, maybe after the server committed."""
    import asyncpg

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


class PostgresDriverPool:
    """asyncpg connections (ConnectionPool); writes are group-committed (GroupCommit): a
    group's statements run in one transaction on one connection, so N writes share one WAL
    flush."""

    def __init__(self, pool: ConnectionPool, slow_queries: Admission) -> None:
        self._pool = pool
        self._slow_queries = slow_queries
        self._writes: GroupCommit[Statement, list[Row]] = GroupCommit(
            self._commit_group, self._one_by_one, retryable=postgres_statement_failed
        )

    @classmethod
    async def open(
        cls,
        url: URL,
        *,
        size: int,
        server_settings: Mapping[str, str] | None = None,
        statement_timeout: float | None = None,
        slow_queries: Admission,
    ) -> PostgresDriverPool:
        import asyncpg

        settings = dict(server_settings or {})
        if statement_timeout:
            settings["statement_timeout"] = str(max(1, round(statement_timeout * 1000)))
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

        async def connect() -> Any:
            # timeout: connecting, as the SQLAlchemy engine's connect_args.
            return await asyncpg.connect(dsn, server_settings=settings, timeout=5)

        pool = ConnectionPool(connect, size)
        await pool.open()
        return cls(pool, slow_queries)

    async def fetch(
        self, sql: str, arguments: Sequence[Any], *, may_be_slow: bool = False
    ) -> list[Row]:
        if may_be_slow:
            async with self._slow_queries.turn():
                return await self._fetch(sql, arguments)
        return await self._fetch(sql, arguments)

    async def _fetch(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        import asyncpg

        try:
            async with self._pool.connection() as connection:
                rows: list[Row] = await connection.fetch(sql, *arguments)
        except asyncpg.QueryCanceledError as exc:
            raise StatementTimeout(str(exc)) from None
        return rows

    async def write(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        return await self._writes.submit((sql, arguments))

    async def _commit_group(self, group: list[Statement]) -> list[Outcome]:
        if len(group) == 1:  # a transaction of its own already: no BEGIN/COMMIT round trips
            return await self._one_by_one(group)
        async with self._pool.connection() as connection, connection.transaction():
            return [await connection.fetch(sql, *arguments) for sql, arguments in group]

    async def _one_by_one(self, group: list[Statement]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for sql, arguments in group:
            try:
                async with self._pool.connection() as connection:
                    outcomes.append(await connection.fetch(sql, *arguments))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def close(self) -> None:
        await self._pool.close()


# SQLite calls the progress handler every this many virtual machine instructions (~0.1 ms).
_PROGRESS_STEPS = 10_000
_WRITER_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    # The checkpointer thread copies the WAL back into the database instead (see below).
    "PRAGMA wal_autocheckpoint = 0",
)
# How often the checkpointer thread copies committed WAL pages into the database file.
CHECKPOINT_SECONDS = 1.0


class _Reader:
    """A read-only connection whose statements are interrupted past a deadline."""

    def __init__(self, path: str, timeout: float | None) -> None:
        # Autocommit (isolation_level=None): every statement is its own transaction.
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA query_only = ON")
        # A reader waits only in rare WAL recovery cases; keep such a wait short.
        self.connection.execute("PRAGMA busy_timeout = 100")
        self.connection.set_progress_handler(self._past_deadline, _PROGRESS_STEPS)
        self.timeout = timeout
        self._deadline = float("inf")

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        self._deadline = time.monotonic() + self.timeout if self.timeout else float("inf")
        try:
            return self.connection.execute(sql, arguments).fetchall()
        except sqlite3.OperationalError as exc:
            if str(exc) == "interrupted":
                raise StatementTimeout(f"statement interrupted after {self.timeout}s") from None
            raise
        finally:
            self._deadline = float("inf")


class SqliteDriverPool:
    """Reads in a reader thread (a read that may be slow, in one of the slow queries' threads);
    writes in another thread, in groups (GroupCommit: one thread switch and one acquisition of
    the write lock per group)."""

    def __init__(
        self, path: str, statement_timeout: float | None = None, *, slow_queries: Admission
    ) -> None:
        self._path = path
        self._statement_timeout = statement_timeout
        self._slow_queries = slow_queries
        # Each reading thread has its own connection (a connection runs one statement at once).
        self._readers: list[_Reader] = []
        self._readers_lock = threading.Lock()
        self._thread_reader = threading.local()
        self._read_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        # As many threads as turns: an admitted slow read never waits for a thread.
        self._slow_threads = ThreadPoolExecutor(
            max_workers=slow_queries.limit, thread_name_prefix="sqlite-slow"
        )
        # Used by the writer thread only; group transactions are begun and ended explicitly.
        self._writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in _WRITER_PRAGMAS:
            self._writer.execute(pragma)
        # The writers of all worker processes take turns through this file lock before they ask
        # SQLite for its write lock. A writer that finds SQLite's lock taken sleeps in SQLite's
        # busy handler, in steps of up to 100 ms, however soon the lock is free again: the
        # benchmark's posts waited up to 1.4 s (p99) while the other worker wrote. Blocked on
        # the file lock instead, the writer thread is woken by the kernel as soon as the
        # other one commits. SQLite's own locking still guards the database; writers that do
        # not take this lock (migrations, the loader) simply wait in the busy handler as before.
        self._write_turn = os.open(path + "-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._writes: GroupCommit[Statement, list[Row]] = GroupCommit(
            self._commit_group, self._one_by_one
        )
        # SQLite's automatic checkpoint runs in the connection that commits, every 1,000 WAL
        # pages: copying them into the database file took hundreds of milliseconds at a million
        # thoughts (FTS5 index pages all over the file), and every write waiting behind it
        # stalled (p99 of posting ~0.6 to 1 s). A passive checkpoint from a thread of its own
        # runs beside the writer instead; readers and writers never wait for it.
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_until_closed,
            args=(path,),
            name="sqlite-checkpoint",
            daemon=True,
        )
        self._checkpointer.start()

    def _checkpoint_until_closed(self, path: str) -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_SECONDS):
                # Busy (another process is checkpointing): the next turn will do.
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()

    @classmethod
    async def open(
        cls, path: str, *, statement_timeout: float | None = None, slow_queries: Admission
    ) -> SqliteDriverPool:
        return cls(path, statement_timeout, slow_queries=slow_queries)

    def _read_now(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        """In a reading thread: the statement on that thread's own connection."""
        reader: _Reader | None = getattr(self._thread_reader, "reader", None)
        if reader is None:
            reader = self._thread_reader.reader = _Reader(self._path, self._statement_timeout)
            with self._readers_lock:
                self._readers.append(reader)
        return reader.fetch(sql, arguments)

    async def fetch(
        self, sql: str, arguments: Sequence[Any], *, may_be_slow: bool = False
    ) -> list[Row]:
        loop = asyncio.get_running_loop()
        if may_be_slow:
            async with self._slow_queries.turn():
                return await loop.run_in_executor(
                    self._slow_threads, self._read_now, sql, arguments
                )
        return await loop.run_in_executor(self._read_thread, self._read_now, sql, arguments)

    async def write(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        return await self._writes.submit((sql, arguments))

    async def _commit_group(self, group: list[Statement]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._commit_group_now, group)

    async def _one_by_one(self, group: list[Statement]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._one_by_one_now, group)

    def _commit_group_now(self, group: list[Statement]) -> list[Outcome]:
        writer = self._writer
        fcntl.flock(self._write_turn, fcntl.LOCK_EX)  # our turn among the workers (see above)
        try:
            writer.execute("BEGIN IMMEDIATE")  # waits for the write lock (busy_timeout)
            try:
                outcomes: list[Outcome] = [
                    writer.execute(sql, arguments).fetchall() for sql, arguments in group
                ]
                writer.execute("COMMIT")
            except BaseException:
                writer.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._write_turn, fcntl.LOCK_UN)
        return outcomes

    def _one_by_one_now(self, group: list[Statement]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for statement in group:
            try:
                outcomes.extend(self._commit_group_now([statement]))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def close(self) -> None:
        self._stop_checkpoints.set()
        self._checkpointer.join(timeout=10)
        self._thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)
        self._slow_threads.shutdown(wait=True)
        for reader in self._readers:
            reader.connection.close()
        self._writer.close()
        os.close(self._write_turn)


async def open_driver_pool(
    url: URL,
    *,
    size: int,
    server_settings: Mapping[str, str] | None = None,
    statement_timeout: float | None = None,
    slow_queries: Admission | None = None,
) -> DriverPool:
    """`slow_queries`: the turns of reads that may be slow; by default two, waiting up to 1 s."""
    slow_queries = slow_queries or Admission(2, 1.0)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("the driver pool needs an SQLite file, not an in-memory database")
        return await SqliteDriverPool.open(
            url.database, statement_timeout=statement_timeout, slow_queries=slow_queries
        )
    return await PostgresDriverPool.open(
        url,
        size=size,
        server_settings=server_settings,
        statement_timeout=statement_timeout,
        slow_queries=slow_queries,
    )


class LazyDriverPool:
    """Opens the pool on first use (from the running event loop), once. Its options may be
    changed until then."""

    def __init__(
        self,
        url: URL,
        *,
        size: int,
        server_settings: Mapping[str, str] | None = None,
        slow_queries: Admission | None = None,
    ) -> None:
        self.url = url
        self.size = size
        self.slow_queries = slow_queries
        self.server_settings = dict(server_settings or {})
        self.statement_timeout: float | None = None
        self._pool: DriverPool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> DriverPool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await open_driver_pool(
                        self.url,
                        size=self.size,
                        server_settings=self.server_settings,
                        statement_timeout=self.statement_timeout,
                        slow_queries=self.slow_queries,
                    )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
