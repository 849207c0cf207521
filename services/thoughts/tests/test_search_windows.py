"""A PostgreSQL search page reads its windows of ids first (search_windows.SearchSpan) and the rest
beyond them only when needed: the pages are exactly those of one query over all matches.

Ids are chosen around the window edges (multiples of 65,536), with gaps of several windows (so
that a page must continue beyond its span) and a dense run (so that a span fills a page alone).
Every case runs on SQLite as well, whose FTS5 path has no windows and must agree all the same.
"""

from __future__ import annotations

from typing import Any

import pytest

from servicekit.pagination import Order, PageRequest
from thoughts_service.models import Thought
from thoughts_service.repository import ThoughtRepository
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
