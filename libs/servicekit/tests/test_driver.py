"""servicekit.driver: the drivers' own pools for hot statements, on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from servicekit.driver import GroupCommit, StatementTimeout, open_driver_pool
from servicekit.testing import DatabaseFactory

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


async def _pool(database_factory: DatabaseFactory, backend: str) -> Any:
    url = make_url(database_factory.empty(backend))
    pool = await open_driver_pool(url, size=4, statement_timeout=0.2)
    await pool.write(DDL[backend], ())
    return pool


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
        rows = await pool.fetch("SELECT body FROM notes ORDER BY id", ())
        assert [row[0] for row in rows] == ["ok1", "ok2", "ok3"]
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
    pool = await _pool(database_factory, db_backend)
    try:
        slow = asyncio.ensure_future(pool.fetch(SLOW[db_backend], (), may_be_slow=True))
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await pool.fetch("SELECT 1", ()))[0][0] == 1
        assert loop.time() - started < 0.1, "the fast read waited for the slow one"
        with pytest.raises(StatementTimeout):
            await slow
    finally:
        await pool.close()


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
