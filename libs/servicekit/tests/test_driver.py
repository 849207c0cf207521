"""servicekit.driver: the drivers' own pools for hot statements, on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from servicekit.admission import Admission, Overloaded
from servicekit.driver import GroupCommit, StatementTimeout, open_driver_pool
from testkit import DatabaseFactory, need, postgres_available

DDL = {
    "sqlite": "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL "
    "CHECK (length(body) < 10))",
    "postgresql": "CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL "
    "CHECK (length(body) < 10))",
}
INSERT = {
    "sqlite": "INSERT INTO notes (body) VALUES (?) RETURNING id",
    "postgresql": "INSERT INTO notes (body) VALUES ($1) RETURNING id",
}
# A query that runs for as long as it is allowed to.
SLOW = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
    "SELECT count(*) FROM n",
    "postgresql": "SELECT pg_sleep(10)",
}


async def _pool(
    database_factory: DatabaseFactory, backend: str, slow_queries: Admission | None = None
) -> Any:
    url = make_url(database_factory.empty(backend))
    pool = await open_driver_pool(url, size=4, statement_timeout=0.2, slow_queries=slow_queries)
    await pool.write(DDL[backend], ())
    return pool


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Lets the loop run until `condition()` holds (what the test waits for, not a guess of
    how long it takes); fails after 5 s."""
    deadline = asyncio.get_running_loop().time() + 5
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0)


async def test_writes_at_the_same_time_are_all_committed_once(
    database_factory: DatabaseFactory, db_backend: str
) -> None:
    pool = await _pool(database_factory, db_backend)
    try:
        results = await asyncio.gather(
            *(pool.write(INSERT[db_backend], (f"n{number}",)) for number in range(60))
        )
        ids = [rows[0][0] for rows in results]
        assert len(set(ids)) == 60
        rows = await pool.fetch("SELECT count(*), count(DISTINCT body) FROM notes", ())
        assert tuple(rows[0]) == (60, 60)
    finally:
        await pool.close()


async def test_a_bad_write_fails_alone(database_factory: DatabaseFactory, db_backend: str) -> None:
    pool = await _pool(database_factory, db_backend)
    try:
        bodies = ["ok1", "far too long for the check", "ok2", "ok3"]
        results = await asyncio.gather(
            *(pool.write(INSERT[db_backend], (body,)) for body in bodies),
            return_exceptions=True,
        )
        assert isinstance(results[1], Exception)
        assert all(not isinstance(result, Exception) for i, result in enumerate(results) if i != 1)
        # Independent writes: on PostgreSQL each runs on a connection of its own, in any order.
        rows = await pool.fetch("SELECT body FROM notes", ())
        assert sorted(row[0] for row in rows) == ["ok1", "ok2", "ok3"]
    finally:
        await pool.close()


async def test_a_read_longer_than_its_timeout_is_cancelled(
    database_factory: DatabaseFactory, db_backend: str
) -> None:
    pool = await _pool(database_factory, db_backend)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(StatementTimeout):
            await pool.fetch(SLOW[db_backend], ())
        assert loop.time() - started < 3
        # The pool is still usable afterwards.
        assert (await pool.fetch("SELECT 1", ()))[0][0] == 1
    finally:
        await pool.close()


async def test_a_slow_read_does_not_hold_up_the_others(
    database_factory: DatabaseFactory, db_backend: str
) -> None:
    slow_queries = Admission(2, 1.0)
    pool = await _pool(database_factory, db_backend, slow_queries)
    try:
        slow = asyncio.ensure_future(pool.fetch(SLOW[db_backend], (), may_be_slow=True))
        await _until(lambda: slow_queries.running == 1, "the slow read took its turn")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await pool.fetch("SELECT 1", ()))[0][0] == 1
        assert loop.time() - started < 0.1, "the fast read waited for the slow one"
        with pytest.raises(StatementTimeout):
            await slow
    finally:
        await pool.close()


async def test_no_read_runs_on_the_event_loop(
    database_factory: DatabaseFactory, db_backend: str
) -> None:
    """Issue 14: a search run inline on SQLite stopped every other request of the process for
    the whole statement timeout. While a read runs, the loop keeps serving."""
    pool = await _pool(database_factory, db_backend)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    try:
        with pytest.raises(StatementTimeout):
            await pool.fetch(SLOW[db_backend], ())  # 0.2 s until the timeout
        # ~20 ticks in 0.2 s; a loop blocked by the read ticks none meanwhile.
        assert ticks >= 5, f"the event loop ticked {ticks} times while the read ran"
    finally:
        ticker.cancel()
        await pool.close()


async def test_slow_reads_beyond_the_limit_wait_only_so_long(
    database_factory: DatabaseFactory, db_backend: str
) -> None:
    url = make_url(database_factory.empty(db_backend))
    slow_queries = Admission(1, wait_seconds=0.1)
    pool = await open_driver_pool(url, size=4, statement_timeout=2, slow_queries=slow_queries)
    try:
        async with slow_queries.turn():  # another slow read runs
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(Overloaded):
                await pool.fetch("SELECT 1", (), may_be_slow=True)
            assert loop.time() - started < 1, "the refused read waited longer than its wait"
            # Reads that are not slow do not queue behind the slow ones.
            assert (await pool.fetch("SELECT 1", ()))[0][0] == 1
        assert (await pool.fetch("SELECT 1", (), may_be_slow=True))[0][0] == 1
    finally:
        await pool.close()


async def test_an_admission_hands_turns_over_in_order_and_forgets_who_gave_up() -> None:
    admission = Admission(1, wait_seconds=5)
    order: list[str] = []

    async def later(name: str) -> None:
        async with admission.turn():
            order.append(name)

    held = admission.turn()
    await held.__aenter__()
    tasks = [asyncio.ensure_future(later(name)) for name in ("second", "gives up", "third")]
    await asyncio.sleep(0)  # one turn of the loop: each task starts and queues
    assert admission.waiting == 3
    tasks[1].cancel()
    await held.__aexit__(None, None, None)
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == ["second", "third"]
    assert (admission.running, admission.waiting) == (0, 0)


async def test_a_group_that_may_have_committed_is_not_retried() -> None:
    retried: list[list[int]] = []

    async def commit_group(items: list[int]) -> list[int | BaseException]:
        raise ConnectionResetError("lost during the commit")

    async def one_by_one(items: list[int]) -> list[int | BaseException]:
        retried.append(items)
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(
        commit_group, one_by_one, retryable=lambda error: not isinstance(error, OSError)
    )
    results = await asyncio.gather(*(group.submit(n) for n in range(3)), return_exceptions=True)

    assert all(isinstance(result, ConnectionResetError) for result in results)
    assert retried == []


# ConnectionPool: the PostgreSQL driver pool's own connections ----------------------------------


@pytest.fixture
def require_postgresql() -> None:
    reason = postgres_available()
    if reason:
        need(reason)


async def _connection_pool(database_factory: DatabaseFactory, size: int) -> Any:
    import asyncpg

    from servicekit.driver import ConnectionPool

    url = make_url(database_factory.empty("postgresql"))
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    opened: list[Any] = []

    async def connect() -> Any:
        connection = await asyncpg.connect(dsn)
        opened.append(connection)
        return connection

    pool = ConnectionPool(connect, size)
    await pool.open()
    return pool, opened


async def _backend_pid(pool: Any) -> int:
    async with pool.connection() as connection:
        return int(await connection.fetchval("SELECT pg_backend_pid()"))


@pytest.mark.usefixtures("require_postgresql")
async def test_the_pool_reuses_connections_and_never_opens_more_than_its_size(
    database_factory: DatabaseFactory,
) -> None:
    pool, opened = await _connection_pool(database_factory, size=3)
    try:
        assert (pool.count, pool.idle) == (1, 1)
        # One at a time: always the same connection.
        assert {await _backend_pid(pool) for _ in range(5)} == {await _backend_pid(pool)}
        assert len(opened) == 1

        # Ten at once on three connections: the others wait their turn, in order, and all run.
        running = 0
        most = 0

        async def query(n: int) -> int:
            nonlocal running, most
            async with pool.connection() as connection:
                running += 1
                most = max(most, running)
                value = int(await connection.fetchval("SELECT $1::int FROM pg_sleep(0.02)", n))
                running -= 1
                return value

        assert await asyncio.gather(*(query(n) for n in range(10))) == list(range(10))
        assert most == 3
        assert len(opened) == 3
        assert (pool.count, pool.idle) == (3, 3)
    finally:
        await pool.close()
    assert pool.count == 0
    assert all(connection.is_closed() for connection in opened)


@pytest.mark.usefixtures("require_postgresql")
async def test_a_statement_error_keeps_the_connection_a_broken_one_is_replaced(
    database_factory: DatabaseFactory,
) -> None:
    import asyncpg

    pool, _ = await _connection_pool(database_factory, size=2)
    try:
        first = await _backend_pid(pool)
        with pytest.raises(asyncpg.UndefinedTableError):
            async with pool.connection() as connection:
                await connection.fetch("SELECT * FROM no_such_table")
        assert await _backend_pid(pool) == first, "a refused statement cost the connection"

        # The server ends the backend (a restart, an administrator): the next user sees the
        # error once, the pool drops that connection and opens a new one for the one after.
        async with pool.connection() as other:
            await other.execute("SELECT 1")  # keep the first connection busy ...
            async with pool.connection() as victim:
                victim_pid = int(await victim.fetchval("SELECT pg_backend_pid()"))
                # The function waits (up to 5 s) until the backend has ended.
                assert await other.fetchval("SELECT pg_terminate_backend($1, 5000)", victim_pid)
        failures = 0
        pids = set()
        for _ in range(4):
            try:
                pids.add(await _backend_pid(pool))
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError):
                failures += 1
        assert failures <= 1
        assert victim_pid not in pids
        assert pool.count <= 2
    finally:
        await pool.close()


@pytest.mark.usefixtures("require_postgresql")
async def test_a_cancelled_query_or_waiter_leaks_no_connection(
    database_factory: DatabaseFactory,
) -> None:
    pool, opened = await _connection_pool(database_factory, size=1)
    try:

        async def sleep_in_the_database() -> None:
            async with pool.connection() as connection:
                await connection.execute("SELECT pg_sleep(10)")

        busy = asyncio.ensure_future(sleep_in_the_database())
        await _until(lambda: pool.count == 1 and pool.idle == 0, "the query holds the connection")
        waiting = asyncio.ensure_future(_backend_pid(pool))
        await _until(lambda: pool.waiting == 1, "the second caller queues")
        waiting.cancel()  # gives up while queued
        busy.cancel()  # cancelled inside a query: the connection's state is unknown
        for task in (waiting, busy):
            with pytest.raises(asyncio.CancelledError):
                await task
        # The cancelled query's connection was dropped, not reused; the pool still serves.
        assert (pool.count, pool.idle) == (0, 0)
        started = asyncio.get_running_loop().time()
        assert await _backend_pid(pool) > 0
        assert asyncio.get_running_loop().time() - started < 5
        assert (pool.count, pool.idle) == (1, 1)
        assert opened[0].is_closed()
    finally:
        await pool.close()


@pytest.mark.usefixtures("require_postgresql")
async def test_a_waiter_learns_why_when_a_replacement_cannot_connect(
    database_factory: DatabaseFactory,
) -> None:
    from servicekit.driver import ConnectionPool
    from servicekit.unavailable import DatabaseUnavailable

    pool, _ = await _connection_pool(database_factory, size=1)
    real_connect = pool._connect
    try:
        async with pool.connection() as connection:
            waiting = asyncio.ensure_future(_backend_pid(pool))
            await _until(lambda: pool.waiting == 1, "the caller queues for the connection")

            async def refuse() -> Any:
                raise ConnectionRefusedError("the database is down")

            pool._connect = refuse
            connection.terminate()  # the holder's connection dies; the waiter needs a new one
        # Told as an unavailable database (a 503), with the refusal as its cause.
        with pytest.raises(DatabaseUnavailable, match="ConnectionRefusedError") as refused:
            await asyncio.wait_for(waiting, 5)
        assert isinstance(refused.value.__cause__, ConnectionRefusedError)
        pool._connect = real_connect
        assert await _backend_pid(pool) > 0  # the server is back: the pool serves again
    finally:
        await pool.close()
    assert isinstance(pool, ConnectionPool)


async def test_sqlite_writers_of_two_processes_take_turns(
    database_factory: DatabaseFactory,
) -> None:
    """Two pools on one file stand for two worker processes (a file lock taken through two
    separate opens conflicts like one taken by two processes): their writers take turns
    through the writers' lock file, and every write lands once."""
    url = make_url(database_factory.empty("sqlite"))
    first = await open_driver_pool(url, size=1)
    second = await open_driver_pool(url, size=1)
    try:
        await first.write(DDL["sqlite"], ())
        # Another process's writer holds the turn: a write waits for it, though SQLite's own
        # write lock is free (without the writers' lock it would land at once).
        assert url.database is not None
        turn = os.open(url.database + "-writers.lock", os.O_RDWR)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
            waiting = asyncio.ensure_future(first.write(INSERT["sqlite"], ("late",)))
            done, _ = await asyncio.wait({waiting}, timeout=0.5)
            assert not done, "a writer wrote while another process held the writers' turn"
            fcntl.flock(turn, fcntl.LOCK_UN)
            await asyncio.wait_for(waiting, 5)
        finally:
            os.close(turn)
        results = await asyncio.gather(
            *(
                (first if number % 2 else second).write(INSERT["sqlite"], (f"n{number}",))
                for number in range(200)
            )
        )
        assert len({rows[0][0] for rows in results}) == 200
        rows = await second.fetch("SELECT count(*), count(DISTINCT body) FROM notes", ())
        assert tuple(rows[0]) == (201, 201)
    finally:
        await first.close()
        await second.close()


@pytest.mark.usefixtures("require_postgresql")
async def test_a_failed_reconnect_fails_every_waiter_at_once(
    database_factory: DatabaseFactory,
) -> None:
    """Issue 14: after a failed reconnect only the first waiter was told; the others waited
    for a connection nobody could open (requests hung 7-30 s). Through a TCP proxy that the
    test makes refuse, never the PostgreSQL server itself."""
    import asyncpg

    from servicekit.driver import ConnectionPool
    from servicekit.unavailable import DatabaseUnavailable
    from testkit.faults import FaultProxy

    url = make_url(database_factory.empty("postgresql"))
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        dsn = url.set(drivername="postgresql", host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        pool = ConnectionPool(lambda: asyncpg.connect(dsn, timeout=2), 1)
        await pool.open()
        try:
            holder_inside = asyncio.Event()

            async def hold() -> None:
                async with pool.connection() as connection:
                    holder_inside.set()
                    await connection.fetch("SELECT pg_sleep(10)")

            async def wait_for_a_connection() -> Any:
                async with pool.connection() as connection:
                    return await connection.fetchval("SELECT 1")

            holder = asyncio.ensure_future(hold())
            await holder_inside.wait()
            waiters = [asyncio.ensure_future(wait_for_a_connection()) for _ in range(5)]
            await asyncio.sleep(0)  # each waiter runs up to its wait for the pool
            assert pool.waiting == 5
            started = asyncio.get_running_loop().time()
            proxy.refuse()  # the held connection is reset, and a new one refused
            outcomes = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 5)
            elapsed = asyncio.get_running_loop().time() - started
            with contextlib.suppress(Exception):
                await holder
        finally:
            await pool.close()

    assert all(isinstance(outcome, DatabaseUnavailable) for outcome in outcomes), outcomes
    assert elapsed < 1.0
