"""The bulk loader of devtools (devtools.synthetic_thoughts) fills a migrated thoughts database
that search then answers from, adds to a loaded one, and makes the same rows from the same seed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select, text

from devtools.synthetic_thoughts import load_synthetic, synthetic_rows
from servicekit.db import Database, DatabaseOptions
from servicekit.pagination import PageRequest
from testkit import DatabaseFactory
from thoughts_service.main import MIGRATIONS_DIR
from thoughts_service.models import TRIGRAM_INDEX, Thought
from thoughts_service.repository import ThoughtRepository


@pytest.fixture
def database_url(database_factory: DatabaseFactory, db_backend: str) -> str:
    return database_factory.fresh(db_backend, MIGRATIONS_DIR)


async def _load_and_search(url: str) -> tuple[int, list[str]]:
    await load_synthetic(url, 600, rare_word="quokkaesque", rare_every=200)
    database = Database(url, DatabaseOptions(driver_pool=True))
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
    # A third more: through the pending list, not a rebuild (synthetic_thoughts.REBUILD_RATIO).
    more = await load_synthetic(url, 800, rare_word="quokkaesque", rare_every=200)
    database = Database(url, DatabaseOptions(driver_pool=True))
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
