"""The book's databases, as its Chapter 11 services create them: what `import-legacy` reads.

Flask-SQLAlchemy names each table after its model (UserModel -> user_model), with no constraint
beyond the primary key:

    user_model(id INTEGER PRIMARY KEY, username VARCHAR(50), password VARCHAR(50),
               creation DATETIME DEFAULT now())
    thought_model(id INTEGER PRIMARY KEY, username VARCHAR(50), text VARCHAR(250),
                  timestamp DATETIME DEFAULT now())

So usernames may repeat, any column may be NULL, passwords are plain text, times are naive UTC,
and SQLite enforces no VARCHAR length (a text may be longer than 250 characters).

`LEGACY_METADATA` is that schema, to read it and to build test fixtures exactly like it.
Tables are read in id order in batches, each batch one short query (`id > last`), so that a
million rows take bounded memory and no transaction stays open on the book's database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, Row, String, Table, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import FromClause

LEGACY_METADATA = MetaData()

user_model = Table(
    "user_model",
    LEGACY_METADATA,
    Column("id", Integer, primary_key=True),
    Column("username", String(50)),
    Column("password", String(50)),
    Column("creation", DateTime, server_default=func.now()),
)

thought_model = Table(
    "thought_model",
    LEGACY_METADATA,
    Column("id", Integer, primary_key=True),
    Column("username", String(50)),
    Column("text", String(250)),
    Column("timestamp", DateTime, server_default=func.now()),
)

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str) -> URL:
    """The book's URL (`postgresql://...`, `postgresql+psycopg2://...`, `sqlite:///...`) with
    the async driver we read it through."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"{url!r}: only SQLite and PostgreSQL databases can be imported")
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def legacy_engine(url: str) -> AsyncEngine:
    # hide_parameters: an error must never print a row's values (plain-text passwords).
    return create_async_engine(async_url(url), hide_parameters=True)


def shown(url: str) -> str:
    """A URL fit for a log line: without its password."""
    return make_url(url).render_as_string(hide_password=True)


async def count_rows(engine: AsyncEngine, table: FromClause) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


async def batches(
    engine: AsyncEngine, table: Table, size: int = 1000
) -> AsyncIterator[Sequence[Row[Any]]]:
    """Every row of `table` in id order, `size` at a time."""
    last: int | None = None
    while True:
        statement = select(table).order_by(table.c.id).limit(size)
        if last is not None:
            statement = statement.where(table.c.id > last)
        async with engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


async def repeated_usernames(engine: AsyncEngine) -> dict[str, list[int]]:
    """Each username that more than one row of user_model holds, with those rows' ids (lowest
    first). Only the repeats are read, so this stays small however many users there are."""
    repeated = (
        select(user_model.c.username)
        .where(user_model.c.username.is_not(None))
        .group_by(user_model.c.username)
        .having(func.count() > 1)
    )
    statement = (
        select(user_model.c.username, user_model.c.id)
        .where(user_model.c.username.in_(repeated))
        .order_by(user_model.c.username, user_model.c.id)
    )
    found: dict[str, list[int]] = {}
    async with engine.connect() as connection:
        for username, row_id in await connection.execute(statement):
            found.setdefault(username, []).append(row_id)
    return found
