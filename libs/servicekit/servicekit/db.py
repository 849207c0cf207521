"""The async database engine and sessions, for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from servicekit.admission import Admission
from servicekit.driver import DriverPool, LazyDriverPool
from servicekit.metrics import PoolStats
from servicekit.tracing import TracedDriverPool, Tracing, trace_sqlalchemy

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


def parse_database_url(url: str) -> URL:
    """Validates a database URL, with a message that says what to write instead."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValueError(f"DATABASE_URL is not a valid URL: {exc}") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ValueError(
            f"DATABASE_URL driver {parsed.drivername!r} is not supported; "
            f"use one of {', '.join(SUPPORTED_DRIVERS)}"
        )
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run while one writer writes; NORMAL sync is safe with WAL; the busy
    # timeout turns lock contention between workers into a short wait instead of an error.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(parsed, pool_size=pool_size, max_overflow=pool_size)
        else:
            # In memory, SQLAlchemy keeps one shared connection (StaticPool), which takes no sizes.
            engine = create_async_engine(parsed)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        # A database host that drops packets must not hang /readyz or a request for asyncpg's
        # default 60 s: fail after a few seconds with a clear error instead.
        connect_args={"timeout": 5},
        pool_timeout=10,
    )


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        server_settings: Mapping[str, str] | None = None,
        tracing: Tracing | None = None,
        slow_queries: Admission | None = None,
    ) -> None:
        """`slow_queries`: how many reads that may be slow the driver pool runs at once, and
        how long the others wait for a turn (servicekit.driver)."""
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self._tracing = tracing
        if tracing is not None:
            trace_sqlalchemy(self.engine.sync_engine, tracing, self.engine.dialect.name)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.slow_queries = slow_queries or Admission(2, 1.0)
        self._driver = LazyDriverPool(
            self.engine.url,
            size=pool_size,
            server_settings=server_settings,
            slow_queries=self.slow_queries,
        )
        # PostgreSQL run-time settings of the driver pool's connections (e.g. plan_cache_mode);
        # may be added to until the pool is first used.
        self.driver_server_settings = self._driver.server_settings
        self._driver_observer: Callable[[DriverPool], DriverPool] | None = None

    def limit_driver_statements(self, seconds: float | None) -> None:
        """Statements of the driver pool that run longer raise StatementTimeout (set before
        the pool is first used)."""
        self._driver.statement_timeout = seconds

    def observe_driver(self, wrap: Callable[[DriverPool], DriverPool]) -> None:
        """Every `driver()` is handed through `wrap` (a recorder of statements for the
        expand/contract tests, testkit.release_statements); set before the first request."""
        self._driver_observer = wrap

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def session(self) -> AsyncIterator[AsyncSession]:
        """FastAPI dependency: one session per request, closed afterwards."""
        async with self.sessionmaker() as session:
            yield session

    async def driver(self) -> DriverPool:
        """The driver's own connections, for a service's hot statements (servicekit.driver).

        Opened on first use with the same pool size; closed by `dispose()`. With tracing on,
        each statement is a span.
        """
        pool: DriverPool = await self._driver.get()
        if self._tracing is not None:
            pool = TracedDriverPool(pool, self._tracing, self.dialect)
        if self._driver_observer is not None:
            pool = self._driver_observer(pool)
        return pool

    def pool_stats(self) -> list[PoolStats]:
        """The connections of SQLAlchemy's pool and of the driver pool (PostgreSQL), now."""
        stats = []
        pool = self.engine.pool
        if hasattr(pool, "checkedout") and hasattr(pool, "checkedin"):
            # QueuePool does not say how many wait; in_use at pool_size + max_overflow does.
            stats.append(PoolStats("sqlalchemy", pool.checkedout(), pool.checkedin(), None))
        # The driver pool's ConnectionPool, once opened (SQLite's driver has no pool).
        connections = getattr(getattr(self._driver, "_pool", None), "_pool", None)
        if connections is not None and hasattr(connections, "count"):
            idle = connections.idle
            stats.append(
                PoolStats(
                    "driver",
                    connections.count - idle,
                    idle,
                    len(getattr(connections, "_waiters", ())),
                )
            )
        return stats

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self._driver.close()
        await self.engine.dispose()
