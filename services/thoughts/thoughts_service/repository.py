"""Every query the service runs. Search is dialect-specific; see thoughts_service.search."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends
from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    column,
    delete,
    func,
    select,
    table,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.deps import SessionDep
from servicekit.pagination import PageRequest
from thoughts_service.models import Thought
from thoughts_service.search import (
    LIKE_ESCAPE,
    fts5_phrase,
    like_contains_pattern,
    search_key,
    uses_index,
)

# The FTS5 table of the SQLite migration; only its rowid (= thoughts.id) is ever read.
_fts = table("thoughts_fts", column("rowid"))
_FTS_MATCH = text("thoughts_fts MATCH :fts_query")

# PostgreSQL: inserts take this transaction-scoped advisory lock so that ids become visible in
# id order. Without it, a transaction holding id 10 may commit after one holding id 11; a reader
# paging in between sees 11, continues "after 11" and never sees 10. SQLite needs nothing: its
# single writer already assigns and commits ids in order.
_INSERT_ORDER_LOCK = 0x7468_6F75  # "thou"


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


class ThoughtRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def create(self, username: str, text_: str) -> Thought:
        if self.dialect == "postgresql":
            await self.session.execute(select(func.pg_advisory_xact_lock(_INSERT_ORDER_LOCK)))
        thought = Thought(username=username, text=text_)  # search_text: the column default
        self.session.add(thought)
        await self.session.commit()
        return thought

    async def get(self, thought_id: int) -> Thought | None:
        return await self.session.get(Thought, thought_id)

    async def list_all(self, page: PageRequest) -> Sequence[Thought]:
        statement = _keyset(select(Thought), Thought.id, page)
        return (await self.session.scalars(statement)).all()

    async def list_by_user(self, username: str, page: PageRequest) -> Sequence[Thought]:
        return (await self.session.scalars(by_user_statement(username, page))).all()

    async def search(self, query: str, page: PageRequest) -> Sequence[Thought]:
        """Thoughts whose text contains `query` case-insensitively (search.matches), one page."""
        statement = search_statement(self.dialect, query, page)
        return (await self.session.scalars(statement)).all()

    async def delete(self, thought_id: int) -> bool:
        result = await self.session.execute(delete(Thought).where(Thought.id == thought_id))
        await self.session.commit()
        return bool(getattr(result, "rowcount", 0))

    async def delete_owned(self, thought_id: int, username: str) -> Deletion:
        # One statement decides, so a thought cannot change hands between a check and a delete.
        result = await self.session.execute(
            delete(Thought).where(Thought.id == thought_id, Thought.username == username)
        )
        await self.session.commit()
        if getattr(result, "rowcount", 0):
            return Deletion.DELETED
        exists = await self.session.scalar(select(Thought.id).where(Thought.id == thought_id))
        return Deletion.NOT_FOUND if exists is None else Deletion.NOT_OWNER


def _keyset(
    statement: Select[Thought], key: SQLColumnExpression[int], page: PageRequest
) -> Select[Thought]:
    """Restricts to the page after the cursor, in page order, one row more than the page."""
    if page.after is not None:
        statement = statement.where(key > page.after if page.order == "asc" else key < page.after)
    ordering = key.asc() if page.order == "asc" else key.desc()
    return statement.order_by(ordering).limit(page.fetch_limit)


def by_user_statement(username: str, page: PageRequest) -> Select[Thought]:
    """One page of a user's thoughts: a range scan of ix_thoughts_username_id."""
    return _keyset(select(Thought).where(Thought.username == username), Thought.id, page)


def search_statement(dialect: str, query: str, page: PageRequest) -> Select[Thought]:
    """The SELECT answering one page of a search, for `dialect` ("sqlite" or "postgresql")."""
    key = search_key(query)
    if not key:
        return _keyset(select(Thought), Thought.id, page)
    if not uses_index(key):
        # Too short for any trigram: walk the primary key in page order with a filter; LIMIT
        # stops the walk as soon as one page is found.
        position = (
            func.instr(Thought.search_text, key)
            if dialect == "sqlite"
            else func.strpos(Thought.search_text, key)
        )
        return _keyset(select(Thought).where(position > 0), Thought.id, page)
    if dialect == "sqlite":
        # The FTS5 table yields matching rowids in rowid order and takes the cursor's rowid bound
        # itself, so a page costs one page of index reads however many rows match.
        fts_rowid: ColumnElement[int] = _fts.c.rowid
        statement = (
            select(Thought)
            .join(_fts, fts_rowid == Thought.id)
            .where(_FTS_MATCH.bindparams(fts_query=fts5_phrase(key)))
        )
        return _keyset(statement, fts_rowid, page)
    # PostgreSQL: pg_trgm GIN index on search_text; the pattern is a bound value so that the
    # planner (custom plans, see main.py) estimates it and picks the index for rare words.
    pattern = like_contains_pattern(key)
    statement = select(Thought).where(Thought.search_text.like(pattern, escape=LIKE_ESCAPE))
    return _keyset(statement, Thought.id, page)


def get_repository(session: SessionDep) -> ThoughtRepository:
    return ThoughtRepository(session)


RepositoryDep = Annotated[ThoughtRepository, Depends(get_repository)]
