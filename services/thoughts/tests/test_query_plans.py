"""The queries use their indexes: EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import ClauseElement, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from servicekit.pagination import PageRequest
from thoughts_service.models import TRIGRAM_INDEX
from thoughts_service.search_windows import SEARCH_WINDOW, SearchSpan
from thoughts_service.statements import (
    by_user_statement,
    search_span_statement,
    search_statement,
)


def _sql(connection: AsyncConnection, statement: ClauseElement) -> str:
    return str(
        statement.compile(connection.sync_connection, compile_kwargs={"literal_binds": True})
    )


async def explain(connection: AsyncConnection, statement: ClauseElement) -> str:
    prefix = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "
    rows = (await connection.execute(text(prefix + _sql(connection, statement)))).all()
    return "\n".join(str(row[-1]) for row in rows)


async def explain_analyze(connection: AsyncConnection, statement: ClauseElement) -> Any:
    """PostgreSQL: the plan as run, with actual row counts (JSON)."""
    sql = "EXPLAIN (ANALYZE, FORMAT JSON) " + _sql(connection, statement)
    return (await connection.execute(text(sql))).scalar_one()[0]["Plan"]


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


# PostgreSQL: 20,000 thoughts, 16 ids apart, so that the table spans five windows of ids.
SPACING = 16
ROWS = 20_000
# ... and 50 thoughts, 6,400 ids apart (about ten in each window), mention a rare word.
RARE_IDS = [6400 * n + 3 for n in range(1, 51)]

PAGES = [
    PageRequest(limit=20),
    PageRequest(limit=20, order="desc"),
    # Continuing pages: cursors with most of the table still ahead of them.
    PageRequest(limit=20, order="asc", after=10),
    PageRequest(limit=20, order="desc", after=300_003),
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


async def fill_realistically(database_url: str) -> None:
    """Thoughts of hex "words" (already lowercase ASCII, so search_text == text), a few of which
    mention a rare word; then nothing is left in the trigram index's pending list and the table
    has fresh statistics, so the planner chooses freely on the table as it is. Through an engine
    of its own: this is the test's setup, which on a busy machine outlasts the app's deadlines."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            # A pending list that holds the whole fill, merged once at the end (through the
            # migration's 256 kB list the inserts take several times as long). The database is
            # this test's own, so the option need not be put back.
            await connection.execute(
                text(f"ALTER INDEX {TRIGRAM_INDEX} SET (gin_pending_list_limit = 65536)")
            )
            await connection.execute(
                text(
                    "INSERT INTO thoughts (id, username, text, search_text, timestamp) "
                    "SELECT n * :spacing, 'user' || (n % 500), t, t, now() FROM ("
                    "  SELECT n, md5(n::text) || ' ' || md5((n * 7)::text) || ' thought' AS t"
                    "  FROM generate_series(1, :rows) AS n) AS generated"
                ),
                {"spacing": SPACING, "rows": ROWS},
            )
            await connection.execute(
                text(
                    "INSERT INTO thoughts (id, username, text, search_text, timestamp) "
                    "SELECT id, 'rare', 'A Zyzzyva ' || id, 'a zyzzyva ' || id, now() "
                    "FROM unnest(CAST(:ids AS bigint[])) AS id"
                ),
                {"ids": RARE_IDS},
            )
            await connection.execute(text(f"SELECT gin_clean_pending_list('{TRIGRAM_INDEX}')"))
            await connection.execute(text("ANALYZE thoughts"))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
async def test_postgresql_search_uses_the_trigram_index_at_realistic_size(app: Any) -> None:
    await fill_realistically(app.state.db.url)
    async with app.state.db.engine.connect() as connection:
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
            assert len(await raw.fetch("EXECUTE page('%zyzzyva%')")) == 21
        plan = "\n".join(row[0] for row in await raw.fetch("EXPLAIN EXECUTE page('%zyzzyva%')"))
        assert TRIGRAM_INDEX in plan, plan
        await raw.execute("DEALLOCATE page")


SPANS: list[tuple[PageRequest, int]] = [
    # A page and the first id it may hold: the newest or oldest thought, or next to the cursor.
    (PageRequest(limit=20, order="desc"), max(RARE_IDS)),
    (PageRequest(limit=20, order="asc"), SPACING),
    (PageRequest(limit=20, order="desc", after=200_000), 199_999),
    (PageRequest(limit=20, order="asc", after=100_000), 100_001),
]


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
async def test_postgresql_search_page_reads_only_the_matches_of_its_windows(app: Any) -> None:
    await fill_realistically(app.state.db.url)
    async with app.state.db.engine.connect() as connection:
        for page, first_id in SPANS:
            span = SearchSpan.starting_at(first_id, page.order)
            assert span is not None
            plan = await explain_analyze(connection, search_span_statement("ZYZZYVA", page, span))
            scans = [node for node in plan_nodes(plan) if node.get("Index Name") == TRIGRAM_INDEX]
            assert len(scans) == 1, plan
            # The windows are a condition of the index itself ...
            assert "(ARRAY[(id / 65536)] && '{" in scans[0]["Index Cond"], plan
            # ... so the index hands over the matches of the span's two windows, not all 50.
            windows = {span.window, span.next_window}
            in_windows = [i for i in RARE_IDS if i // SEARCH_WINDOW in windows]
            assert scans[0]["Actual Rows"] == len(in_windows) < len(RARE_IDS), plan
            (heap,) = [node for node in plan_nodes(plan) if node["Node Type"] == "Bitmap Heap Scan"]
            assert heap["Exact Heap Blocks"] <= len(in_windows), plan
            # A common word needs no index: walking the primary key from the span's first id
            # (the id range is its index condition) finds a page at once.
            common = await explain(connection, search_span_statement("thought", page, span))
            assert "thoughts_pkey" in common, common
            assert "Index Cond: ((id >= " in common, common
            assert TRIGRAM_INDEX not in common, common
