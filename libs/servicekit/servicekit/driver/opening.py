"""Opening a driver pool for a database URL: at once (open_driver_pool), or on first use from
the running event loop (LazyDriverPool, what servicekit.db.Database holds)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy.engine import URL

from servicekit.admission import Admission
from servicekit.driver.interface import DriverPool, LastAnswer
from servicekit.driver.postgres import PostgresDriverPool
from servicekit.driver.sqlite import SqliteDriverPool


@dataclass(frozen=True)
class DriverOptions:
    """How a driver pool is opened; fixed when it is created (servicekit.db.DatabaseOptions
    derives them)."""

    size: int  # PostgreSQL: connections at most (SQLite's pool has no connections to count)
    # Statements that run longer raise StatementTimeout; None: no limit.
    statement_timeout: float | None = None
    # PostgreSQL run-time settings of every connection (e.g. plan_cache_mode).
    server_settings: Mapping[str, str] = field(default_factory=dict)
    # PostgreSQL's client-side deadlines (servicekit.db.DatabaseOptions).
    connect_timeout: float = 2.0
    acquire_timeout: float = 2.0
    query_timeout: float = 3.0

    def __post_init__(self) -> None:
        # A copy that nobody can change: the options are fixed once the pool exists.
        object.__setattr__(self, "server_settings", MappingProxyType(dict(self.server_settings)))


async def open_driver_pool(
    url: URL,
    *,
    size: int,
    server_settings: Mapping[str, str] | None = None,
    statement_timeout: float | None = None,
    slow_queries: Admission | None = None,
    connect_timeout: float = 2.0,
    acquire_timeout: float = 2.0,
    query_timeout: float = 3.0,
    last_answer: LastAnswer | None = None,
) -> DriverPool:
    """`slow_queries`: the turns of reads that may be slow; by default two, waiting up to 1 s.
    `last_answer`: where the pool records when the database answered (servicekit.readiness)."""
    slow_queries = slow_queries or Admission(2, 1.0)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("the driver pool needs an SQLite file, not an in-memory database")
        return await SqliteDriverPool.open(
            url.database,
            statement_timeout=statement_timeout,
            slow_queries=slow_queries,
            last_answer=last_answer,
        )
    return await PostgresDriverPool.open(
        url,
        size=size,
        server_settings=server_settings,
        statement_timeout=statement_timeout,
        slow_queries=slow_queries,
        connect_timeout=connect_timeout,
        acquire_timeout=acquire_timeout,
        query_timeout=query_timeout,
        last_answer=last_answer,
    )


class LazyDriverPool:
    """Opens the pool on first use (from the running event loop), once, with the options it was
    created with."""

    def __init__(
        self,
        url: URL,
        options: DriverOptions,
        slow_queries: Admission,
        last_answer: LastAnswer | None = None,
    ) -> None:
        self.url = url
        self.options = options
        self.slow_queries = slow_queries
        self.last_answer = last_answer or LastAnswer()
        self._pool: DriverPool | None = None
        self._lock = asyncio.Lock()

    @property
    def opened(self) -> DriverPool | None:
        """The pool, once opened (for its statistics); None before."""
        return self._pool

    async def get(self) -> DriverPool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await open_driver_pool(
                        self.url,
                        size=self.options.size,
                        server_settings=self.options.server_settings,
                        statement_timeout=self.options.statement_timeout,
                        slow_queries=self.slow_queries,
                        connect_timeout=self.options.connect_timeout,
                        acquire_timeout=self.options.acquire_timeout,
                        query_timeout=self.options.query_timeout,
                        last_answer=self.last_answer,
                    )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
