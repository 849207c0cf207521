"""ThoughtRepository: every query and write of the service, and the rows it returns.

The hot paths (get one, list, list mine, search, post) run their statements
(thoughts_service.statements, compiled once: thoughts_service.compiled) on the database driver's
own connections. The benchmark (bench/README.md) showed why: at a million thoughts the database
answers these queries in tens of microseconds, while building, compiling and executing an ORM
statement and turning rows into ORM objects cost over half a millisecond of CPU per request,
the largest part of a request's cost. Rarely used writes (deletes) use the ORM session as usual.

A PostgreSQL search page is answered in windows of ids (thoughts_service.search_windows): the
matches in the page's two windows first, then, only if those do not fill the page, the matches
beyond them. A first page's windows are those of the newest (or oldest) thought; once a worker
has seen where that is (SearchEdges), one statement reads the page's windows and checks that
the edge is still there (ThoughtRepository._first_windows).
"""

from __future__ import annotations

import contextlib
import enum
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import delete, select

from servicekit.admission import QueueLimit
from servicekit.db import Database
from servicekit.pagination import Order, PageRequest
from thoughts_service.compiled import compiled_query
from thoughts_service.inserts import PostgresInserts
from thoughts_service.models import Thought
from thoughts_service.search import search_key, uses_index
from thoughts_service.search_windows import SearchSpan
from thoughts_service.statements import SLOW_QUERIES, ThoughtQuery, page_values, search_values

_INSERT_SQLITE = (
    "INSERT INTO thoughts (username, text, search_text, timestamp, idempotency_key) "
    "VALUES (?, ?, ?, ?, ?) RETURNING id"
)
# How SQLAlchemy's SQLite DateTime stores a (naive, UTC) datetime, so that both paths agree.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


class Deletion(enum.Enum):
    DELETED = "deleted"
    NOT_FOUND = "not found"
    NOT_OWNER = "not owner"


class SearchStrategy(enum.Enum):
    """How a search is answered: a label of the searches metric."""

    INDEX = "index"
    SCAN = "scan"


def search_strategy(query: str) -> SearchStrategy:
    return SearchStrategy.INDEX if uses_index(search_key(query)) else SearchStrategy.SCAN


class ThoughtRow(NamedTuple):
    """A thought as read: what the API returns, nothing else (no search key)."""

    id: int
    username: str
    text: str
    timestamp: datetime

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


def _utc(value: datetime | str) -> datetime:
    # asyncpg returns timestamptz as aware UTC datetimes; SQLite stores naive UTC text.
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _thought(row: Any) -> ThoughtRow:
    return ThoughtRow(row[0], row[1], row[2], _utc(row[3]))


class SearchEdges:
    """The newest and the oldest thought's id as the last first page of a PostgreSQL search saw
    them (one per process): where the next first page's span is likely to start. Only a guess,
    checked by the statement that reads the page (ThoughtRepository._first_windows)."""

    def __init__(self) -> None:
        self._edges: dict[Order, int] = {}

    def get(self, order: Order) -> int | None:
        return self._edges.get(order)

    def saw(self, order: Order, edge: int | None) -> None:
        if edge is None:
            self._edges.pop(order, None)
        else:
            self._edges[order] = edge


class Created(NamedTuple):
    """The outcome of a post: the thought, and whether an earlier post with the same
    Idempotency-Key had made it already (then nothing was stored now)."""

    thought: ThoughtRow
    replayed: bool


def _is_duplicate(error: BaseException) -> bool:
    """The author already has a thought with this Idempotency-Key (the unique index said so)."""

    return isinstance(error, asyncpg.UniqueViolationError | sqlite3.IntegrityError)


class ThoughtRepository:
    """The service's data access. Hot paths run on the driver pool (servicekit.driver: no
    session, no transaction, SQL compiled once); deletes use an ORM session of their own."""

    def __init__(
        self,
        database: Database,
        *,
        inserts: PostgresInserts | None = None,
        post_queue: QueueLimit | None = None,
        search_edges: SearchEdges | None = None,
    ) -> None:
        """`post_queue`: the app's bound on posts waiting for their commit (POST_QUEUE_LIMIT);
        None for a repository of a script, which posts one at a time. `search_edges`: the
        app's (one per process); None, this repository's own."""
        self.database = database
        self._dialect = database.engine.dialect
        self._inserts = inserts
        self._post_queue = post_queue
        self._search_edges = search_edges if search_edges is not None else SearchEdges()

    @property
    def dialect(self) -> str:
        return self._dialect.name

    async def _fetch(
        self, kind: ThoughtQuery, values: dict[str, Any], order: Order = "asc"
    ) -> list[ThoughtRow]:
        return [_thought(row) for row in await self._fetch_rows(kind, values, order)]

    async def _fetch_rows(
        self, kind: ThoughtQuery, values: dict[str, Any], order: Order = "asc"
    ) -> list[Any]:
        query = compiled_query(self._dialect, kind, order, "after" in values)
        driver = await self.database.driver()
        # A search may be slow (one shorter than a trigram walks the table until it has a page;
        # one of common trigrams reads long index lists): it waits for a turn of the database's
        # slow queries, and gets a 503 when none comes in time (servicekit.admission).
        return await driver.fetch(
            query.sql, query.arguments(values), may_be_slow=kind in SLOW_QUERIES
        )

    async def _page(self, kind: ThoughtQuery, page: PageRequest, **values: Any) -> list[ThoughtRow]:
        return await self._fetch(kind, {**values, **page_values(page)}, page.order)

    async def create(
        self, username: str, text_: str, *, idempotency_key: str | None = None
    ) -> Created:
        """Stores a thought; with an Idempotency-Key the author used before, stores nothing and
        answers with the thought that post made (replayed)."""
        if idempotency_key is not None:
            earlier = await self._by_key(username, idempotency_key)
            if earlier is not None:
                return Created(earlier, replayed=True)
        try:
            return Created(await self._insert(username, text_, idempotency_key), replayed=False)
        except Exception as exc:
            # The same key posted twice at once: the other post stored it first.
            if idempotency_key is None or not _is_duplicate(exc):
                raise
            earlier = await self._by_key(username, idempotency_key)
            if earlier is None:
                raise
            return Created(earlier, replayed=True)

    async def _by_key(self, username: str, idempotency_key: str) -> ThoughtRow | None:
        rows = await self._fetch(
            ThoughtQuery.BY_KEY, {"username": username, "idempotency_key": idempotency_key}
        )
        return rows[0] if rows else None

    async def _insert(self, username: str, text_: str, idempotency_key: str | None) -> ThoughtRow:
        now = datetime.now(UTC)
        key = search_key(text_)
        # Beyond the bound, Overloaded (503, Retry-After) before anything is sent to the database.
        with self._post_queue.place() if self._post_queue else contextlib.nullcontext():
            if self.dialect == "postgresql":
                inserts = self._inserts or PostgresInserts(self.database)
                thought_id = await inserts.insert((username, text_, key, now, idempotency_key))
                return ThoughtRow(thought_id, username, text_, now)
            # SQLite: the driver commits concurrent writes in groups itself.
            driver = await self.database.driver()
            stored = now.replace(tzinfo=None).strftime(_SQLITE_DATETIME)
            row = (username, text_, key, stored, idempotency_key)
            rows = await driver.write(_INSERT_SQLITE, row)
            return ThoughtRow(int(rows[0][0]), username, text_, now)

    async def get(self, thought_id: int) -> ThoughtRow | None:
        rows = await self._fetch(ThoughtQuery.ONE, {"id": thought_id})
        return rows[0] if rows else None

    async def list_all(self, page: PageRequest) -> Sequence[ThoughtRow]:
        return await self._page(ThoughtQuery.ALL, page)

    async def list_by_user(self, username: str, page: PageRequest) -> Sequence[ThoughtRow]:
        return await self._page(ThoughtQuery.BY_USER, page, username=username)

    async def search(self, query: str, page: PageRequest) -> Sequence[ThoughtRow]:
        """Thoughts whose text contains `query` case-insensitively (search.matches), one page."""
        kind, values = search_values(self.dialect, query)
        if kind is ThoughtQuery.LIKE:
            return await self._search_by_span(values, page)
        return await self._page(kind, page, **values)

    async def _search_by_span(self, values: dict[str, Any], page: PageRequest) -> list[ThoughtRow]:
        """A page of ThoughtQuery.LIKE: the matches in the page's span (SearchSpan), then, if
        they do not fill the page, the rest from the matches beyond it. The same rows as one
        ThoughtQuery.LIKE query for the whole page; it costs the span's matches, plus, only when
        those are too few for a page, what the one query cost."""
        order = page.order
        limit = page.fetch_limit
        if page.after is not None:
            first_id = page.after - 1 if order == "desc" else page.after + 1
            span = SearchSpan.starting_at(first_id, order)
            if span is None:
                return await self._page(ThoughtQuery.LIKE, page, **values)
            rows = await self._fetch(
                ThoughtQuery.LIKE_WINDOWS, {**values, **span.values(), "limit": limit}, order
            )
        else:
            first = await self._first_windows(values, order, limit)
            if first is None:
                return []
            span, rows = first
            if span is None:
                return await self._page(ThoughtQuery.LIKE, page, **values)
        if len(rows) < limit:
            beyond = {**values, "after": span.rest_after(order), "limit": limit - len(rows)}
            rows += await self._fetch(ThoughtQuery.LIKE, beyond, order)
        return rows

    async def _first_windows(
        self, values: dict[str, Any], order: Order, limit: int
    ) -> tuple[SearchSpan | None, list[ThoughtRow]] | None:
        """The span of a first page and its matches; None when there are no thoughts at all.

        The span starts at the newest (desc) or oldest (asc) thought, the edge. One statement
        reads the matches of the span made from the edge the last search of this process saw
        (SearchEdges) and the edge as it is now, in the same snapshot: when the edge now gives
        the same span (it is still in its window, which for the newest thought changes once in
        65,536 posts) the rows are exactly those of the span read after the edge; otherwise,
        or without a known edge or any match to carry the edge's column, the edge is read
        first, as one step down the primary key, and then the span. Either way nothing but the
        edge's window is remembered, and the page always comes from the database."""
        known = self._search_edges.get(order)
        if known is not None:
            span = SearchSpan.of_first_page(known, order)
            if span is not None:
                found = await self._fetch_rows(
                    ThoughtQuery.LIKE_FIRST_WINDOWS,
                    {**values, **span.values(), "limit": limit},
                    order,
                )
                if found:
                    edge = found[0][4]
                    self._search_edges.saw(order, edge)
                    if edge is not None and SearchSpan.of_first_page(edge, order) == span:
                        return span, [_thought(row) for row in found]
        edges = await self._fetch(ThoughtQuery.ALL, {"limit": 1}, order)
        if not edges:
            return None
        self._search_edges.saw(order, edges[0].id)
        span = SearchSpan.of_first_page(edges[0].id, order)
        if span is None:
            return None, []
        rows = await self._fetch(
            ThoughtQuery.LIKE_WINDOWS, {**values, **span.values(), "limit": limit}, order
        )
        return span, rows

    async def delete(self, thought_id: int) -> bool:
        async with self.database.sessionmaker() as session:
            result = await session.execute(delete(Thought).where(Thought.id == thought_id))
            await session.commit()
        return bool(getattr(result, "rowcount", 0))

    async def delete_owned(self, thought_id: int, username: str) -> Deletion:
        async with self.database.sessionmaker() as session:
            # One statement decides, so a thought cannot change hands between check and delete.
            result = await session.execute(
                delete(Thought).where(Thought.id == thought_id, Thought.username == username)
            )
            await session.commit()
            if getattr(result, "rowcount", 0):
                return Deletion.DELETED
            exists = await session.scalar(select(Thought.id).where(Thought.id == thought_id))
        return Deletion.NOT_FOUND if exists is None else Deletion.NOT_OWNER
