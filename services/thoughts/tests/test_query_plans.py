"""The queries use their indexes: EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from servicekit.pagination import PageRequest
from thoughts_service.loader import trigram_index_bulk_mode
from thoughts_service.models import Thought
from thoughts_service.repository import by_user_statement, search_statement

TRIGRAM_INDEX = "ix_thoughts_search_text_trgm"


async def explain(connection: AsyncConnection, statement: Select[Thought]) -> str:
    sql = str(statement.compile(connection.sync_connection, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "
    rows = (await connection.execute(text(prefix + sql))).all()
    return "\n".join(str(row[-1]) for row in rows)


PAGES = [
    PageRequest(limit=20),
    PageRequest(limit=20, order="desc"),
    # Continuing pages: cursors with most of the table still ahead of them.
    PageRequest(limit=20, order="asc", after=10),
    PageRequest(limit=20, order="desc", after=20_003),
]


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
async def test_sqlite_search_reads_the_fts5_table_in_page_order(app: Any) -> None:
    async with app.state.db.engine.connect() as connection:
        for page in PAGES:
            plan = await explain(connection, search_statement("sqlite", "Needle", page))
            assert "SCAN thoughts_fts VIRTUAL TABLE" in plan, plan
            assert "SEARCH thoughts USING INTEGER PRIMARY KEY" in plan, plan
            # FTS5 hands rows over in rowid order: no sorting of all matches.
            assert "TEMP B-TREE" not in plan, plan
            short = await explain(connection, search_statement("sqlite", "ne", page))
            assert "TEMP B-TREE" not in short, short
            mine = await explain(connection, by_user_statement("bruce", page))
            assert "ix_thoughts_username_id" in mine, mine
            assert "TEMP B-TREE" not in mine, mine


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
async def test_postgresql_search_uses_the_trigram_index_at_realistic_size(app: Any) -> None:
    async with app.state.db.engine.connect() as connection:
        # 20,000 thoughts of hex "words" (already lowercase ASCII, so search_text == text),
        # a few of which mention a rare word; bulk mode ends with fresh statistics, so the
        # planner chooses freely on the table as it is.
        async with trigram_index_bulk_mode(connection):
            await connection.execute(
                text(
                    "INSERT INTO thoughts (username, text, search_text, timestamp) "
                    "SELECT 'user' || (n % 500), t, t, now() FROM ("
                    "  SELECT n, md5(n::text) || ' ' || md5((n * 7)::text) || ' thought' AS t"
                    "  FROM generate_series(1, 20000) AS n) AS generated"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO thoughts (username, text, search_text, timestamp) "
                    "SELECT 'rare', 'A Zyzzyva ' || n, 'a zyzzyva ' || n, now() "
                    "FROM generate_series(1, 5) AS n"
                )
            )
        await connection.commit()
        for page in PAGES:
            plan = await explain(connection, search_statement("postgresql", "ZYZZYVA", page))
            assert TRIGRAM_INDEX in plan, plan
            assert "Seq Scan" not in plan, plan
            mine = await explain(connection, by_user_statement("user42", page))
            assert "ix_thoughts_username_id" in mine, mine
        # A common word needs no index: walking the primary key finds a page at once.
        common = await explain(connection, search_statement("postgresql", "thought", PAGES[0]))
        assert "thoughts_pkey" in common, common

        # asyncpg prepares every statement; after five runs PostgreSQL would switch to a generic
        # plan, blind to the pattern, that walks the whole primary key for a rare word. The
        # app's connections plan every execution for its own parameters.
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        assert await raw.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
        await raw.execute(
            "PREPARE page(text) AS SELECT id FROM thoughts "
            "WHERE search_text LIKE $1 ESCAPE '/' ORDER BY id LIMIT 21"
        )
        for _ in range(8):
            assert len(await raw.fetch("EXECUTE page('%zyzzyva%')")) == 5
        plan = "\n".join(row[0] for row in await raw.fetch("EXPLAIN EXECUTE page('%zyzzyva%')"))
        assert TRIGRAM_INDEX in plan, plan
        await raw.execute("DEALLOCATE page")
