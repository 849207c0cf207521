"""Alembic, one migration history per service, run as its own step (never at app start-up).

A service's `migrations/env.py` is two lines: import its metadata and call `run_env(metadata)`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from servicekit.db import parse_database_url


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(migrations_dir: Path, database_url: str, revision: str = "head") -> None:
    parse_database_url(database_url)
    command.upgrade(alembic_config(migrations_dir, database_url), revision)


def head_revision(migrations_dir: Path) -> str | None:
    script = ScriptDirectory.from_config(alembic_config(migrations_dir, "sqlite+aiosqlite://"))
    return script.get_current_head()


def known_revisions(migrations_dir: Path) -> frozenset[str]:
    """Every revision of this version's history: a database at one that is not the head is
    behind; at one not among them, a later release's migration has already run."""
    script = ScriptDirectory.from_config(alembic_config(migrations_dir, "sqlite+aiosqlite://"))
    return frozenset(revision.revision for revision in script.walk_revisions())


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


class NotMigrated(Exception):
    """The database is not at this version's newest migration; the message says what to run."""


async def require_head(engine: AsyncEngine, migrations_dir: Path, service: str) -> None:
    """NotMigrated unless the database is at the head of `migrations_dir`: for the commands that
    write (create-user, import-legacy), which on a database without the tables would fail deep
    in the driver with a traceback that does not say the one thing to do."""
    head = head_revision(migrations_dir)
    found = await current_revision(engine)
    if found != head:
        raise NotMigrated(
            f"the {service} database is at migration {found or 'none'}, not {head}: "
            f"run `python -m {service}_service migrate` first"
        )


def _run_migrations(connection: Connection, metadata: MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str, metadata: MetaData) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations, metadata)
            await connection.commit()
    finally:
        await engine.dispose()


def run_env(metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by servicekit.migrations.alembic_config"
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, metadata))
