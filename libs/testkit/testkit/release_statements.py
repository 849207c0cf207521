"""The SQL a release sends, recorded, to replay against a newer schema (expand/contract).

A deploy runs the migrations first and replaces the servers afterwards, so for a while the
previous release's code runs on the new schema: every migration must keep that code working
(docs/migrations.md). Each service's `tests/test_expand_contract.py` proves it: it replays the
statements its previous release sent, recorded in `tests/release_statements/<dialect>.json`,
against a database migrated to the current head, and fails on the first one the new schema
refuses (a dropped or renamed column or table, a new NOT NULL column without a default, a
narrowed type or a new constraint the old writes break).

Recording: a `StatementRecorder` sees every statement that succeeds on a database, with its
parameters, in the order they ran: through SQLAlchemy (sessions, Core; it listens to the engine's
events) and through the driver pool of the hot paths (servicekit.driver), which a database
hands through it only when created with `DatabaseOptions(driver_observer=recorder.observe_driver)`
(options are given at construction, never changed after). A service's test drives its
API through a fixed workload with the recorder on and writes the file (see the services'
tests). Replaying uses the raw drivers (sqlite3, asyncpg) in autocommit, one statement at a
time, in the recorded order, so that the ids the workload created exist again when a later
statement names them.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url

from servicekit.db import Database
from servicekit.driver import DriverPool, Row

# Statements that say nothing about the schema: a connection's own housekeeping.
_IGNORED_PREFIXES = ("select pg_catalog.", "select current_schema", "show ", "pragma ")


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: tuple[Any, ...]


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, time):
        return {"time": value.isoformat()}
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        ((kind, text),) = value.items()
        if kind == "datetime":
            return datetime.fromisoformat(text)
        if kind == "date":
            return date.fromisoformat(text)
        if kind == "time":
            return time.fromisoformat(text)
        return base64.b64decode(text)
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


class _RecordingDriverPool:
    def __init__(self, inner: DriverPool, statements: list[Statement]) -> None:
        self._inner = inner
        self._statements = statements

    async def fetch(
        self, sql: str, arguments: Sequence[Any], *, may_be_slow: bool = False
    ) -> list[Row]:
        rows = await self._inner.fetch(sql, arguments, may_be_slow=may_be_slow)
        self._statements.append(Statement(sql, tuple(arguments)))
        return rows

    async def write(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        rows = await self._inner.write(sql, arguments)
        self._statements.append(Statement(sql, tuple(arguments)))
        return rows

    async def close(self) -> None:
        await self._inner.close()


class StatementRecorder:
    """Records what succeeds on a database: `listen(database)` before the app's first request;
    a database with a driver pool must also have been created with
    `driver_observer=recorder.observe_driver`."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []

    def observe_driver(self, pool: DriverPool) -> DriverPool:
        return _RecordingDriverPool(pool, self.statements)

    def listen(self, database: Database) -> None:
        if database.options.driver_pool and database.options.driver_observer != self.observe_driver:
            # Else the hot paths' statements would be missing from the recording, unnoticed.
            raise ValueError(
                "this database has a driver pool: create it with "
                "DatabaseOptions(driver_observer=recorder.observe_driver)"
            )
        event.listen(database.engine.sync_engine, "after_cursor_execute", self._after)

    def _after(
        self,
        _connection: Any,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        rows = parameters if executemany else [parameters]
        for row in rows:
            values = tuple(row.values()) if isinstance(row, dict) else tuple(row or ())
            self.statements.append(Statement(statement, values))

    def relevant(self) -> list[Statement]:
        return [
            statement
            for statement in self.statements
            if not statement.sql.strip().lower().startswith(_IGNORED_PREFIXES)
            and "alembic_version" not in statement.sql
        ]


async def record_workload(
    app: Any,
    steps: Callable[[Any], Awaitable[None]],
    recorder: StatementRecorder | None = None,
) -> list[Statement]:
    """Starts `app` in process (lifespan included), runs `await steps(client)` against it with
    `recorder` (a new one by default) on its database, and returns what the database was sent."""
    import httpx
    from asgi_lifespan import LifespanManager

    recorder = recorder or StatementRecorder()
    recorder.listen(app.state.db)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
            await steps(client)
    return recorder.relevant()


# Password hashes are not committed, even of test passwords: any string will do in a replay.
_REDACTED_PREFIXES = ("$argon2",)


def _committable(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_REDACTED_PREFIXES):
        return "$redacted-hash"
    return value


def save(
    path: Path,
    statements: Sequence[Statement],
    *,
    release: str,
    dialect: str,
    migration_head: str | None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "release": release,
        "dialect": dialect,
        "migration_head": migration_head,
        "statements": [
            {"sql": s.sql, "parameters": _encode([_committable(v) for v in s.parameters])}
            for s in statements
        ],
    }
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Recording:
    release: str
    dialect: str
    migration_head: str | None
    statements: list[Statement]


def load(path: Path) -> Recording:
    document = json.loads(path.read_text(encoding="utf-8"))
    return Recording(
        release=document["release"],
        dialect=document["dialect"],
        migration_head=document["migration_head"],
        statements=[
            Statement(item["sql"], tuple(_decode(item["parameters"])))
            for item in document["statements"]
        ],
    )


class ReplayFailed(AssertionError):
    pass


async def replay(database_url: str, statements: Sequence[Statement]) -> int:
    """Runs the statements in order on the database; raises ReplayFailed at the first refused
    one, naming it. Returns how many ran."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _replay_sqlite(url.database or ":memory:", statements)
    import asyncpg

    connection = await asyncpg.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        for number, statement in enumerate(statements, 1):
            try:
                await connection.execute(statement.sql, *statement.parameters)
            except Exception as exc:
                raise _failure(number, statement, exc) from exc
    finally:
        await connection.close()
    return len(statements)


def _replay_sqlite(path: str, statements: Sequence[Statement]) -> int:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for number, statement in enumerate(statements, 1):
            parameters = tuple(
                value.isoformat(" ") if isinstance(value, datetime) else value
                for value in statement.parameters
            )
            try:
                connection.execute(statement.sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise _failure(number, statement, exc) from exc
    finally:
        connection.close()
    return len(statements)


def _failure(number: int, statement: Statement, exc: Exception) -> ReplayFailed:
    return ReplayFailed(
        f"statement {number} of the previous release fails on this schema: "
        f"{type(exc).__name__}: {exc}\n  {statement.sql}"
    )


async def execute_ddl(database_url: str, *statements: str) -> None:
    """Changes a schema by hand, as a later migration might (the tests' contracting changes)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class ReleaseRecordings:
    """A service's recorded release: `<folder>/<dialect>.json`, and the checks its
    `tests/test_expand_contract.py` runs with it."""

    folder: Path
    migrations_dir: Path
    release: str

    def path(self, dialect: str) -> Path:
        return self.folder / f"{dialect}.json"

    def save(self, dialect: str, statements: Sequence[Statement]) -> None:
        from servicekit.migrations import head_revision

        save(
            self.path(dialect),
            statements,
            release=self.release,
            dialect=dialect,
            migration_head=head_revision(self.migrations_dir),
        )

    async def check(self, dialect: str, database_url: str, *, at_least: int) -> None:
        """The previous release's statements run on `database_url` (migrated to this head)."""
        from servicekit.migrations import known_revisions

        recording = load(self.path(dialect))
        # Recorded at a migration of this history: this head is that one or a later one.
        assert recording.migration_head in known_revisions(self.migrations_dir), (
            f"{self.path(dialect)} was recorded at migration {recording.migration_head}, "
            "which this history does not have"
        )
        assert len(recording.statements) >= at_least, "the workload recorded too little"
        assert await replay(database_url, recording.statements) == len(recording.statements)

    async def check_change(
        self, dialect: str, database_url: str, ddl: Sequence[str], *, breaks_on: str | None
    ) -> None:
        """After `ddl` (a hand-made schema change), the replay fails naming `breaks_on`, or,
        with None, still runs whole: that the check can fail, and fails for what it names."""
        await execute_ddl(database_url, *ddl)
        statements = load(self.path(dialect)).statements
        if breaks_on is None:
            assert await replay(database_url, statements) == len(statements)
            return
        import pytest

        with pytest.raises(ReplayFailed, match=re.escape(breaks_on)):
            await replay(database_url, statements)
