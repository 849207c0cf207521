"""The async database engine and sessions, for SQLite (embedded default) and PostgreSQL.

A Database is created with one frozen DatabaseOptions and never changed afterwards. Its
connections, per process, follow one rule: `pool_size` is the most it holds, both pools together.
A service that runs hot statements on the driver's own connections (servicekit.driver,
`driver_pool=True`) gives SQLAlchemy's pool a quarter of them (at least one, for the ORM's rarer
paths) and the driver pool the rest; any other service gives SQLAlchemy all of them.
Neither pool overflows. Beside them, /readyz has one connection of its own (`probe_engine`), so
that a busy pool never makes a loaded service look unready (servicekit.readiness).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from servicekit.admission import Admission
from servicekit.driver import (
    DriverOptions,
    DriverPool,
    LastAnswer,
    LazyDriverPool,
    PostgresDriverPool,
)
from servicekit.metrics import PoolStats
from servicekit.settings import ServiceSettings
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


@dataclass(frozen=True)
class DatabaseOptions:
    """How a Database connects; given when it is created, never changed after."""

    # Connections per process, both pools together (see the module's docstring).
    pool_size: int = 10
    # Opens the driver's own pool for the service's hot statements (servicekit.driver).
    driver_pool: bool = False
    # Statements of the driver pool that run longer raise StatementTimeout; None: no limit.
    statement_timeout: float | None = None
    # PostgreSQL run-time settings of every connection of both pools (e.g. plan_cache_mode).
    server_settings: Mapping[str, str] = field(default_factory=dict)
    # Reads that may be slow run this many at once per process; the others wait this long for a
    # turn, then raise Overloaded (servicekit.admission).
    slow_queries: int = 2
    slow_query_wait_seconds: float = 1.0
    # Client-side deadlines (issue 14): opening a connection, waiting for one from a pool, and
    # one statement (or a write's whole transaction). Past one, DatabaseUnavailable (503).
    # The query deadline is at least the statement timeout plus a second, so that the
    # server's own cancel, which keeps the connection, normally comes first.
    connect_timeout: float = 2.0
    acquire_timeout: float = 2.0
    query_timeout: float = 3.0
    # Sees the driver pool of every `driver()` call and returns what the caller gets: the
    # expand/contract tests' statement recorder (testkit.release_statements). None: the pool.
    driver_observer: Callable[[DriverPool], DriverPool] | None = None

    def __post_init__(self) -> None:
        if self.driver_pool and self.pool_size < 2:
            raise ValueError("a database with a driver pool needs a pool size of 2 or more")
        object.__setattr__(self, "server_settings", MappingProxyType(dict(self.server_settings)))
        if min(self.connect_timeout, self.acquire_timeout, self.query_timeout) <= 0:
            raise ValueError("database timeouts must be positive")
        if self.statement_timeout is not None:
            object.__setattr__(
                self, "query_timeout", max(self.query_timeout, self.statement_timeout + 1)
            )

    @classmethod
    def from_settings(cls, settings: ServiceSettings, **options: Any) -> DatabaseOptions:
        """The DB_* settings every service has, and the service's own `options`."""
        return cls(
            pool_size=settings.db_pool_size,
            slow_queries=settings.db_slow_queries,
            slow_query_wait_seconds=settings.db_slow_query_wait_seconds,
            connect_timeout=settings.db_connect_timeout_seconds,
            acquire_timeout=settings.db_acquire_timeout_seconds,
            query_timeout=settings.db_query_timeout_seconds,
            **options,
        )

    @property
    def session_pool_size(self) -> int:
        """SQLAlchemy's share of `pool_size`."""
        return max(1, self.pool_size // 4) if self.driver_pool else self.pool_size

    @property
    def driver_pool_size(self) -> int:
        """The driver pool's share of `pool_size` (0 without one)."""
        return self.pool_size - self.session_pool_size if self.driver_pool else 0


def create_engine(url: str, options: DatabaseOptions | None = None) -> AsyncEngine:
    options = options or DatabaseOptions()
    parsed = parse_database_url(url)
    size = options.session_pool_size
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(parsed, pool_size=size, max_overflow=0)
        else:
            # In memory, SQLAlchemy keeps one shared connection (StaticPool), which takes no sizes.
            engine = create_async_engine(parsed)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        parsed,
        pool_size=size,
        max_overflow=0,
        pool_pre_ping=True,
        pool_recycle=1800,
        # The deadlines of DatabaseOptions: a database host that drops packets must not hang
        # a request for asyncpg's default 60 s, nor for ever once connected (command_timeout
        # is asyncpg's client-side limit of every statement, BEGIN and COMMIT included).
        connect_args={
            "timeout": options.connect_timeout,
            "command_timeout": options.query_timeout,
            "server_settings": dict(options.server_settings),
        },
        pool_timeout=options.acquire_timeout,
    )
    event.listen(engine.sync_engine, "handle_error", _timeout_invalidates)
    return engine


def _timeout_invalidates(context: ExceptionContext) -> None:
    # A statement (or the pre-ping) past asyncpg's command_timeout leaves its connection in an
    # unknown state; SQLAlchemy would roll it back, waiting for the timeout again on a database
    # that does not answer. As a disconnect it is thrown away instead (the server rolls back).
    if isinstance(context.original_exception, TimeoutError):
        context.is_disconnect = True


class Database:
    def __init__(
        self,
        url: str,
        options: DatabaseOptions | None = None,
        *,
        tracing: Tracing | None = None,
    ) -> None:
        self.url = url
        self.options = options or DatabaseOptions()
        self.engine = create_engine(url, self.options)
        # When the database last answered a statement of either pool (servicekit.readiness).
        self.last_answer = LastAnswer()
        event.listen(self.engine.sync_engine, "after_cursor_execute", self._answered)
        self.probe_engine = self._create_probe_engine()
        self._tracing = tracing
        if tracing is not None:
            trace_sqlalchemy(self.engine.sync_engine, tracing, self.engine.dialect.name)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.slow_queries = Admission(
            self.options.slow_queries, self.options.slow_query_wait_seconds
        )
        self._driver = LazyDriverPool(
            self.engine.url,
            DriverOptions(
                size=max(1, self.options.driver_pool_size),
                statement_timeout=self.options.statement_timeout,
                server_settings=self.options.server_settings,
                connect_timeout=self.options.connect_timeout,
                acquire_timeout=self.options.acquire_timeout,
                query_timeout=self.options.query_timeout,
            ),
            self.slow_queries,
            self.last_answer,
        )

    def _answered(self, *_: Any) -> None:
        self.last_answer.record()

    def _create_probe_engine(self) -> AsyncEngine:
        """/readyz's own connection, outside the request pools (servicekit.readiness).

        One connection, kept open (a health check every second must not cost a new server
        process each time), checked before use as the request pool's are. Not traced: probes
        are not requests anybody follows. An in-memory SQLite database exists only in its one
        connection, so there the probe shares the engine.
        """
        if self.engine.url.get_backend_name() == "sqlite" and self.engine.url.database in (
            None,
            "",
            ":memory:",
        ):
            return self.engine
        return create_engine(self.url, replace(self.options, pool_size=1, driver_pool=False))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def session(self) -> AsyncIterator[AsyncSession]:
        """FastAPI dependency: one session per request, closed afterwards."""
        async with self.sessionmaker() as session:
            yield session

    async def driver(self) -> DriverPool:
        """The driver's own connections, for a service's hot statements (servicekit.driver).

        Opened on first use; closed by `dispose()`. With tracing on, each statement is a span;
        with a `driver_observer`, the caller gets what it returns.
        """
        if not self.options.driver_pool:
            raise RuntimeError("this database was created without a driver pool (driver_pool)")
        pool: DriverPool = await self._driver.get()
        if self._tracing is not None:
            pool = TracedDriverPool(pool, self._tracing, self.dialect)
        if self.options.driver_observer is not None:
            pool = self.options.driver_observer(pool)
        return pool

    def pool_stats(self) -> list[PoolStats]:
        """The connections of SQLAlchemy's pool and of the driver pool (PostgreSQL), now."""
        stats = []
        pool = self.engine.pool
        if hasattr(pool, "checkedout") and hasattr(pool, "checkedin"):
            # QueuePool does not say how many wait; in_use at its size does.
            stats.append(PoolStats("sqlalchemy", pool.checkedout(), pool.checkedin(), None))
        driver = self._driver.opened
        if isinstance(driver, PostgresDriverPool):  # SQLite's driver has no connections to count
            connections = driver.connections
            stats.append(
                PoolStats(
                    "driver",
                    connections.count - connections.idle,
                    connections.idle,
                    connections.waiting,
                )
            )
        return stats

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self._driver.close()
        if self.probe_engine is not self.engine:
            await self.probe_engine.dispose()
        await self.engine.dispose()
