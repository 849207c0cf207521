"""A PostgreSQL search page reads its windows of ids first (search_windows.SearchSpan) and the rest
beyond them only when needed: the pages are exactly those of one query over all matches.

Ids are chosen around the window edges (multiples of 65,536), with gaps of several windows (so
that a page must continue beyond its span) and a dense run (so that a span fills a page alone).
Every case runs on SQLite as well, whose FTS5 path has no windows and must agree all the same.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete

from servicekit.pagination import Order, PageRequest
from thoughts_service.models import Thought
from thoughts_service.repository import SearchEdges, ThoughtRepository
from thoughts_service.search import matches
from thoughts_service.search_windows import SEARCH_WINDOW, SearchSpan

W = SEARCH_WINDOW
MAX_ID = 2**63 - 1
EDGES = [1, 2, W - 2, W - 1, W, W + 1, 2 * W - 1, 2 * W, 2 * W + 1, 3 * W, 4 * W - 1, 4 * W]
DENSE = list(range(4 * W + 1000, 4 * W + 1030))  # 30 ids in window 4
FAR = [10 * W, 10 * W + 1, 11 * W - 1, 15 * W + 7]  # windows 5 to 9 and 12 to 14: empty
IDS = sorted({*EDGES, *DENSE, *FAR})


def text_of(thought_id: int) -> str:
    """Every thought says "Row"; two in three say "Needle", the others "Haystack"."""
    return f"Row {thought_id} " + ("Haystack" if thought_id % 3 == 0 else "Needle")


QUERIES = ["needle", "NEEDLE", "haystack", "row", "nowhere to be found", "ne"]
CURSORS = sorted(
    {c for i in IDS for c in (i - 1, i, i + 1)} | {0, -1, -5 * W, MAX_ID, -(2**63), 20 * W}
)


def expected_page(query: str, page: PageRequest) -> list[int]:
    """The reference: all matches in page order after the cursor, `fetch_limit` of them."""
    found = [i for i in IDS if matches(query, text_of(i))]
    if page.order == "desc":
        found.reverse()
    if page.after is not None:
        after = page.after
        found = [i for i in found if (i > after if page.order == "asc" else i < after)]
    return found[: page.fetch_limit]


@pytest.fixture
async def repository(app: Any) -> ThoughtRepository:
    async with app.state.db.sessionmaker() as session:
        session.add_all(Thought(id=i, username="edge", text=text_of(i)) for i in IDS)
        await session.commit()
    return ThoughtRepository(app.state.db)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_pages_across_window_edges_are_the_pages_of_one_query(
    repository: ThoughtRepository, order: Order
) -> None:
    for query in QUERIES:
        for limit in (1, 3):
            for after in [None, *CURSORS]:
                page = PageRequest(limit=limit, order=order, after=after)
                found = [row.id for row in await repository.search(query, page)]
                assert found == expected_page(query, page), (query, page)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_following_the_pages_gives_every_match_once(
    repository: ThoughtRepository, order: Order
) -> None:
    for query in QUERIES:
        everything = expected_page(query, PageRequest(limit=len(IDS), order=order))
        for limit in (1, 2, 20, 100):
            collected: list[int] = []
            after = None
            while True:
                page = PageRequest(limit=limit, order=order, after=after)
                rows = await repository.search(query, page)
                assert len(rows) <= page.fetch_limit
                collected += [row.id for row in rows[:limit]]
                if len(rows) <= limit:
                    break
                after = rows[limit - 1].id
            assert collected == everything, (query, limit)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_an_empty_table_has_empty_pages(app: Any, order: Order) -> None:
    repository = ThoughtRepository(app.state.db)
    for after in (None, 1, W, MAX_ID):
        page = PageRequest(limit=20, order=order, after=after)
        assert list(await repository.search("needle", page)) == []


def test_a_span_covers_its_window_and_the_next_in_page_order() -> None:
    assert SearchSpan.starting_at(3 * W + 5, "desc") == SearchSpan(3, 2, 2 * W, 3 * W + 5)
    assert SearchSpan.starting_at(3 * W, "desc") == SearchSpan(3, 2, 2 * W, 3 * W)
    assert SearchSpan.starting_at(3 * W - 1, "desc") == SearchSpan(2, 1, W, 3 * W - 1)
    assert SearchSpan.starting_at(5, "desc") == SearchSpan(0, -1, 0, 5)
    assert SearchSpan.starting_at(3 * W + 5, "asc") == SearchSpan(3, 4, 3 * W + 5, 5 * W - 1)
    assert SearchSpan.starting_at(3 * W - 1, "asc") == SearchSpan(2, 3, 3 * W - 1, 4 * W - 1)
    assert SearchSpan.starting_at(0, "asc") == SearchSpan(0, 1, 0, 2 * W - 1)
    # The last window: the span stops at the largest bigint.
    last = MAX_ID // W
    assert SearchSpan.starting_at(MAX_ID, "asc") == SearchSpan(last, last + 1, MAX_ID, MAX_ID)
    # Outside 0 to the largest bigint: no span (the page is one plain query).
    assert SearchSpan.starting_at(-1, "desc") is None
    assert SearchSpan.starting_at(MAX_ID + 1, "asc") is None
    span = SearchSpan.starting_at(3 * W + 5, "desc")
    assert span is not None
    assert span.rest_after("desc") == 2 * W
    span = SearchSpan.starting_at(3 * W + 5, "asc")
    assert span is not None
    assert span.rest_after("asc") == 5 * W - 1


# A first page's span starts at the newest (desc) or oldest (asc) thought. The repository reads
# it with the edge the last first page saw (SearchEdges) and checks that edge in the same
# statement: whatever it remembered, and however the edge moved since, the page is right.
KNOWN_EDGES = [None, 1, W - 1, 4 * W + 1029, 15 * W + 7, 40 * W, MAX_ID, -5]


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("known", KNOWN_EDGES)
async def test_a_first_page_is_right_whatever_edge_was_seen_before(
    repository: ThoughtRepository, order: Order, known: int | None
) -> None:
    for query in QUERIES:
        for limit in (1, 3, 100):
            page = PageRequest(limit=limit, order=order)
            edges = SearchEdges()
            if known is not None:
                edges.saw(order, known)
            fresh = ThoughtRepository(repository.database, search_edges=edges)
            found = [row.id for row in await fresh.search(query, page)]
            assert found == expected_page(query, page), (query, page, known)


async def _delete(app: Any, ids: list[int]) -> None:
    async with app.state.db.sessionmaker() as session:
        await session.execute(delete(Thought).where(Thought.id.in_(ids)))
        await session.commit()


async def _add(app: Any, ids: list[int]) -> None:
    async with app.state.db.sessionmaker() as session:
        session.add_all(Thought(id=i, username="edge", text=text_of(i)) for i in ids)
        await session.commit()


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_first_pages_follow_the_edge_as_thoughts_come_and_go(
    app: Any, repository: ThoughtRepository, order: Order
) -> None:
    """One repository (one process's SearchEdges) while the newest and oldest thoughts change:
    within the edge's window, into the next windows, and back."""
    ids = set(IDS)

    async def check() -> None:
        for query in ("needle", "row", "haystack"):
            for limit in (1, 3):
                page = PageRequest(limit=limit, order=order)
                found = [row.id for row in await repository.search(query, page)]
                everything = sorted(i for i in ids if matches(query, text_of(i)))
                if order == "desc":
                    everything.reverse()
                assert found == everything[: page.fetch_limit], (query, page, sorted(ids)[-3:])

    await check()
    changes: list[tuple[str, list[int]]] = [
        ("add", [15 * W + 8, 15 * W + 10]),  # newer, in the newest's window
        ("add", [16 * W + 1]),  # the next window
        ("add", [30 * W + 2, 30 * W + 4]),  # far beyond
        ("delete", [30 * W + 2, 30 * W + 4, 16 * W + 1]),  # back to window 15
        ("delete", [1, 2]),  # the oldest, in its window
        ("delete", [W - 2, W - 1]),  # the oldest now in window 1
        ("add", [0]),  # an older one than any seen (ids may be given)
    ]
    for change, changed in changes:
        if change == "add":
            await _add(app, changed)
            ids.update(changed)
        else:
            await _delete(app, changed)
            ids.difference_update(changed)
        await check()


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_a_first_page_is_one_statement_once_the_edge_is_known(
    app: Any, repository: ThoughtRepository, order: Order, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edge's own statement (one step down the primary key) is read only when no first page
    has seen the edge yet, or when it left its window."""
    ids = set(IDS)
    newest = list(range(15 * W + 8, 15 * W + 20))  # so that the newest windows fill a page
    await _add(app, newest)
    ids.update(newest)
    driver = await app.state.db.driver()
    statements: list[str] = []
    real_fetch = driver.fetch

    async def counted(sql: str, arguments: Any, **kwargs: Any) -> Any:
        statements.append(sql)
        return await real_fetch(sql, arguments, **kwargs)

    monkeypatch.setattr(driver, "fetch", counted)

    async def edge_statements_of_first_page() -> int:
        """How many statements of the page read the edge alone (no LIKE: one step down the
        primary key); the page's own statements, the span and maybe the matches beyond it,
        are the same either way."""
        statements.clear()
        page = PageRequest(limit=3, order=order)
        found = [row.id for row in await repository.search("needle", page)]
        everything = sorted(i for i in ids if matches("needle", text_of(i)))
        if order == "desc":
            everything.reverse()
        assert found == everything[: page.fetch_limit]
        return sum(1 for sql in statements if " LIKE " not in sql)

    assert await edge_statements_of_first_page() == 1
    assert await edge_statements_of_first_page() == 0
    assert await edge_statements_of_first_page() == 0
    # The edge leaves its window: it is read once more, then known again.
    if order == "desc":
        moved = list(range(20 * W + 1, 20 * W + 13))
        await _add(app, moved)
        ids.update(moved)
    else:
        moved = [i for i in IDS if i < 4 * W]  # the oldest is now in window 4, with DENSE
        await _delete(app, moved)
        ids.difference_update(moved)
    assert await edge_statements_of_first_page() == 1
    assert await edge_statements_of_first_page() == 0


def test_a_first_pages_span_has_the_windows_of_its_edge_and_no_bound_beyond_it() -> None:
    assert SearchSpan.of_first_page(3 * W + 5, "desc") == SearchSpan(3, 2, 2 * W, MAX_ID)
    assert SearchSpan.of_first_page(3 * W + 5, "asc") == SearchSpan(3, 4, 3 * W, 5 * W - 1)
    assert SearchSpan.of_first_page(5, "desc") == SearchSpan(0, -1, 0, MAX_ID)
    assert SearchSpan.of_first_page(5, "asc") == SearchSpan(0, 1, 0, 2 * W - 1)
    # Same window, same span: an edge read before still gives the page's span.
    assert SearchSpan.of_first_page(3 * W, "desc") == SearchSpan.of_first_page(4 * W - 1, "desc")
    assert SearchSpan.of_first_page(3 * W, "asc") == SearchSpan.of_first_page(4 * W - 1, "asc")
    assert SearchSpan.of_first_page(-1, "desc") is None
