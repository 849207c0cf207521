"""The driver pool of PostgreSQL: asyncpg connections; each write is one statement in a
transaction of its own.

Writes are not grouped here: a caller whose writes arrive together groups them itself into one
statement (the thoughts service's posts: one multi-row INSERT per group, thoughts_service.inserts),
which costs one round trip where a transaction of N statements costs N. So each PostgreSQL post
is batched exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from servicekit.admission import Admission
from servicekit.driver.connection_pool import ConnectionPool, postgres_statement_failed
from servicekit.driver.interface import LastAnswer, Outcome, Row, Statement, StatementTimeout
from servicekit.unavailable import DatabaseUnavailable


class PostgresDriverPool:
    """asyncpg connections (ConnectionPool): reads, and writes of one statement each."""

    def __init__(self, pool: ConnectionPool, slow_queries: Admission) -> None:
        self._pool = pool
        self._slow_queries = slow_queries

    @property
    def connections(self) -> ConnectionPool:
        return self._pool

    @classmethod
    async def open(
        cls,
        url: URL,
        *,
        size: int,
        server_settings: Mapping[str, str] | None = None,
        statement_timeout: float | None = None,
        slow_queries: Admission,
        connect_timeout: float = 2.0,
        acquire_timeout: float = 2.0,
        query_timeout: float = 3.0,
        last_answer: LastAnswer | None = None,
    ) -> PostgresDriverPool:
        settings = dict(server_settings or {})
        if statement_timeout:
            settings["statement_timeout"] = str(max(1, round(statement_timeout * 1000)))
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

        async def connect() -> Any:
            # timeout: connecting, as the SQLAlchemy engine's connect_args.
            return await asyncpg.connect(dsn, server_settings=settings, timeout=connect_timeout)

        pool = ConnectionPool(
            connect,
            size,
            acquire_timeout=acquire_timeout,
            query_timeout=query_timeout,
            last_answer=last_answer,
        )
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
        try:
            async with self._pool.connection() as connection:
                rows: list[Row] = await connection.fetch(sql, *arguments)
        except asyncpg.QueryCanceledError as exc:
            raise StatementTimeout(str(exc)) from None
        return rows

    async def write(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        (rows,) = await self._transaction([(sql, arguments)])
        assert not isinstance(rows, BaseException)
        return rows

    async def _transaction(self, group: list[Statement]) -> list[Outcome]:
        """The statements in one explicit transaction, even a single one (issue 14).

        A statement run on its own commits as soon as the server receives it: one sent just
        before the network went silent would commit when the bytes arrive, long after its
        request was answered 503. Here COMMIT is sent only after every statement answered,
        within the pool's deadline, so a write that fails before it is never committed later
        (the server rolls back when the terminated connection closes). One that fails after
        COMMIT was sent may have been committed: DatabaseUnavailable(outcome_unknown=True)
        says so. The price is two short round trips per write (BEGIN, COMMIT).
        """
        async with self._pool.connection() as connection:
            transaction = connection.transaction()
            await transaction.start()
            rows: list[Outcome] = [
                await connection.fetch(sql, *arguments) for sql, arguments in group
            ]
            try:
                await transaction.commit()
            except Exception as exc:
                if postgres_statement_failed(exc):  # e.g. a deferred constraint: rolled back
                    raise
                raise DatabaseUnavailable(
                    f"no answer to COMMIT ({type(exc).__name__})", outcome_unknown=True
                ) from exc
            return rows

    async def close(self) -> None:
        await self._pool.close()
