"""The hand-written migration goes up, down and up again on both databases; the bulk loader
fills a database that search then answers from."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from sqlalchemy import func, inspect, select, text

from servicekit.db import Database
from servicekit.migrations import alembic_config, upgrade
from servicekit.pagination import PageRequest
from servicekit.testing import DatabaseFactory
from thoughts_service.loader import TRIGRAM_INDEX, load_synthetic, synthetic_rows
from thoughts_service.main import MIGRATIONS_DIR
from thoughts_service.models import Thought
from thoughts_service.repository import ThoughtRepository


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


async def _load_and_search(url: str) -> tuple[int, list[str]]:
    await load_synthetic(url, 600, rare_word="quokkaesque", rare_every=200)
    database = Database(url)
    try:
        async with database.sessionmaker() as session:
            total = await session.scalar(select(func.count()).select_from(Thought))
        found = await ThoughtRepository(database).search("QuokkaEsque", PageRequest(limit=20))
        return int(total or 0), [thought.text for thought in found]
    finally:
        await database.dispose()


def test_loader_fills_a_searchable_database(database_url: str) -> None:
    total, found = asyncio.run(_load_and_search(database_url))
    assert total == 600
    assert len(found) == 3
    assert all("quokkaesque" in text.lower() for text in found)


async def _load_more_and_search(url: str) -> tuple[bool, list[int], Any]:
    await load_synthetic(url, 600, rare_word="quokkaesque", rare_every=200)
    # A third more: through the index's pending list, not a rebuild (loader.REBUILD_RATIO).
    more = await load_synthetic(url, 800, rare_word="quokkaesque", rare_every=200)
    database = Database(url)
    try:
        page = PageRequest(limit=20, order="desc")
        found = await ThoughtRepository(database).search("quokkaesque", page)
        options = None
        if database.dialect == "postgresql":
            async with database.engine.connect() as connection:
                options = await connection.scalar(
                    text("SELECT reloptions FROM pg_class WHERE relname = :name"),
                    {"name": TRIGRAM_INDEX},
                )
        return more.index_rebuilt, [thought.id for thought in found], options
    finally:
        await database.dispose()


def test_loader_adds_to_a_loaded_database(database_url: str, db_backend: str) -> None:
    rebuilt, found, options = asyncio.run(_load_more_and_search(database_url))
    assert not rebuilt
    # Rows number 100, 300, 500 and 700 of the data set, newest first.
    assert found == [701, 501, 301, 101]
    if db_backend == "postgresql":
        assert options == ["fastupdate=on", "gin_pending_list_limit=256"]


def test_synthetic_rows_are_reproducible_and_valid() -> None:
    def texts(seed: int) -> list[tuple[str, str]]:
        return [(row["username"], row["text"]) for row in synthetic_rows(50, seed=seed)]

    assert texts(7) == texts(7)
    assert texts(7) != texts(8)
    first = list(synthetic_rows(50, seed=7))
    assert all(1 <= len(row["text"]) <= 250 for row in first)
