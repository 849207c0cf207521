"""The hand-written migration goes up, down and up again on both databases."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import inspect

from servicekit.db import Database
from servicekit.migrations import alembic_config, upgrade
from testkit import DatabaseFactory
from thoughts_service.main import MIGRATIONS_DIR
from thoughts_service.models import TRIGRAM_INDEX


async def _table_names(url: str) -> set[str]:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            indexes = await connection.run_sync(
                lambda sync: (
                    {i["name"] for i in inspect(sync).get_indexes("thoughts")}
                    if "thoughts" in names
                    else set()
                )
            )
            return set(names) | {str(name) for name in indexes}
    finally:
        await database.dispose()


def test_migration_round_trip(database_factory: DatabaseFactory, db_backend: str) -> None:
    url = database_factory.empty(db_backend)
    upgrade(MIGRATIONS_DIR, url)
    created = asyncio.run(_table_names(url))
    assert {"thoughts", "ix_thoughts_username_id"} <= created
    search_index = "thoughts_fts" if db_backend == "sqlite" else TRIGRAM_INDEX
    assert search_index in created
    if db_backend == "postgresql":
        # 0002 replaced 0001's trigram index with the one keyed by id window, and back.
        assert "ix_thoughts_search_text_trgm" not in created
        command.downgrade(alembic_config(MIGRATIONS_DIR, url), "0001")
        indexes = asyncio.run(_table_names(url))
        assert "ix_thoughts_search_text_trgm" in indexes
        assert TRIGRAM_INDEX not in indexes
    command.downgrade(alembic_config(MIGRATIONS_DIR, url), "base")
    assert not {"thoughts", "thoughts_fts"} & asyncio.run(_table_names(url))
    upgrade(MIGRATIONS_DIR, url)
    assert search_index in asyncio.run(_table_names(url))
