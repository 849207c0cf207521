"""Every query the service runs. Search is dialect-specific; see thoughts_service.search.

The hot paths (get one, list, list mine, search, post) are written once, as SQLAlchemy Core
statements with named parameters, compiled once per dialect and page shape, and then run by
the database driver itself on the session's connection. The benchmark (bench/README.md) showed
why: at a million thoughts the database answers these queries in tens of microseconds, while
building, compiling and executing an ORM statement and turning rows into ORM objects cost over
half a millisecond of CPU per request, the largest part of a request's cost. The statements stay
the single source of truth (test_query_plans.py explains them); only their per-request
overhead is gone. Rarely used writes (deletes) use the ORM session as usual.

A PostgreSQL search page is answered in windows of ids (see SEARCH_WINDOW): the matches in the
page's two windows first, then, only if those do not fill the page, the matches beyond them.
"""

from __future__ import annotations

import enum
import functools
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

from fastapi import Depends, Request
from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Dialect,
    Integer,
    Select,
    SQLColumnExpression,
    Text,
    bindparam,
    cast,
    column,
    delete,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import array

from servicekit.db import Database
from servicekit.driver import GroupCommit, postgres_statement_failed
from servicekit.pagination import Order, PageRequest
from thoughts_service.models import Thought
from thoughts_service.search import (
    LIKE_ESCAPE,
    fts5_query,
    like_contains_pattern,
    search_key,
    uses_index,
)

# The FTS5 table of the SQLite migration; only its rowid (= thoughts.id) is ever read.
_fts = table("thoughts_fts", column("rowid"))
_FTS_MATCH = text("thoughts_fts MATCH :fts_query").bindparams(bindparam("fts_query", type_=Text))

# PostgreSQL: inserts take this transaction-scoped advisory lock so that ids become visible in
# id order. Without it, a transaction holding id 10 may commit after one holding id 11; a reader
# paging in between sees 11, continues "after 11" and never sees 10. SQLite needs nothing: its
# single writer already assigns and commits ids in order.
_INSERT_ORDER_LOCK = 0x7468_6F75  # "thou"

# Thoughts posted at the same time are inserted together (PostgresInserts): one statement, one
# round trip, its own transaction. The FROM subquery takes the lock before any row (and its id,
# from the sequence) is formed: a row of the join needs the subquery's row first, and
# PostgreSQL never flattens a subquery that calls a volatile function. The lock is released
# at the commit that ends the statement. Rows come back with their content, to give each
# request its own id whatever order RETURNING uses.
_INSERT_POSTGRESQL = (
    "INSERT INTO thoughts (username, text, search_text, timestamp, idempotency_key) "
    "SELECT r.username, r.text, r.search_text, r.timestamp, r.idempotency_key "
    "FROM (SELECT pg_advisory_xact_lock($6::bigint)) AS insert_order_lock, "
    "unnest($1::varchar[], $2::varchar[], $3::text[], $4::timestamptz[], $5::varchar[]) "
    "AS r(username, text, search_text, timestamp, idempotency_key) "
    "RETURNING id, username, text, timestamp"
)
_INSERT_SQLITE = (
    "INSERT INTO thoughts (username, text, search_text, timestamp, idempotency_key) "
    "VALUES (?, ?, ?, ?, ?) RETURNING id"
)
# How SQLAlchemy's SQLite DateTime stores a (naive, UTC) datetime, so that both paths agree.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"

# PostgreSQL search reads ids in windows of this many: window n holds the ids n * SEARCH_WINDOW
# to (n + 1) * SEARCH_WINDOW - 1, and the trigram index of migration 0002 is keyed by the window
# (`ARRAY[id / 65536]`) as well as by the trigrams. Without it, a page of a search for a rare
# word read every match of the table from the heap (978 at a million thoughts) to keep the
# newest 21. With it, a page asks first for the matches in two windows only (SearchSpan: for a
# word in 0.1% of the thoughts, 65 to 131 of them, enough for a page), and the index hands over
# only those. Larger windows read more matches per page; smaller ones more often leave a page
# short, and the rest of it comes from a plain search beyond the windows. The index's
# expression holds the same number: change both together, in a migration.
SEARCH_WINDOW = 65536
# `ARRAY[id / 65536]`, exactly as indexed (a bound 65536 would not match the index expression).
_ID_WINDOW = array([Thought.id // literal_column(str(SEARCH_WINDOW), BigInteger)])
_MAX_ID = 2**63 - 1  # bigint


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


class Kind(enum.Enum):
    """The shapes of SELECT the service runs; each is compiled once per dialect and page shape."""

    ONE = "one"  # by id
    ALL = "all"  # every thought, a page
    BY_USER = "by user"  # one author's, a page
    SCAN = "scan"  # search for a key shorter than a trigram: filter while walking ids
    FTS = "fts"  # SQLite search: the FTS5 trigram table
    LIKE = "like"  # PostgreSQL search: LIKE served by the pg_trgm GIN index
    LIKE_WINDOWS = "like windows"  # PostgreSQL search: LIKE within two windows of ids
    BY_KEY = "by idempotency key"  # the thought an author's post with this key made


# Searches: each waits for a turn of the driver pool's slow queries (see ThoughtRepository._fetch).
SLOW_KINDS = frozenset({Kind.SCAN, Kind.FTS, Kind.LIKE, Kind.LIKE_WINDOWS})

_COLUMNS = (Thought.id, Thought.username, Thought.text, Thought.timestamp)
ThoughtSelect = Select[int, str, str, datetime]


def _keyset(
    statement: ThoughtSelect, key: SQLColumnExpression[int], order: Order, has_cursor: bool
) -> ThoughtSelect:
    """Restricts to the page after the cursor (:after), in page order, :limit rows."""
    if has_cursor:
        after = bindparam("after", type_=BigInteger)
        statement = statement.where(key > after if order == "asc" else key < after)
    ordering = key.asc() if order == "asc" else key.desc()
    return statement.order_by(ordering).limit(bindparam("limit", type_=Integer))


@functools.cache
def shape(
    dialect: str, kind: Kind, order: Order = "asc", has_cursor: bool = False
) -> ThoughtSelect:
    """The statement of one kind of query for `dialect`, its values as named parameters."""
    base = select(*_COLUMNS)
    if kind is Kind.ONE:
        return base.where(Thought.id == bindparam("id", type_=BigInteger))
    if kind is Kind.ALL:
        return _keyset(base, Thought.id, order, has_cursor)
    if kind is Kind.BY_KEY:
        # The partial unique index ux_thoughts_username_idempotency_key (migration 0003).
        return base.where(
            Thought.username == bindparam("username"),
            Thought.idempotency_key == bindparam("idempotency_key"),
        )
    if kind is Kind.BY_USER:
        # A range scan of ix_thoughts_username_id, in page order.
        return _keyset(
            base.where(Thought.username == bindparam("username")), Thought.id, order, has_cursor
        )
    if kind is Kind.SCAN:
        # Too short for any trigram: walk the primary key in page order with a filter; LIMIT
        # stops the walk as soon as one page is found.
        key: BindParameter[str] = bindparam("key", type_=Text)
        position = (
            func.instr(Thought.search_text, key)
            if dialect == "sqlite"
            else func.strpos(Thought.search_text, key)
        )
        return _keyset(base.where(position > 0), Thought.id, order, has_cursor)
    if kind is Kind.FTS:
        # The FTS5 table yields matching rowids in rowid order and takes the cursor's rowid bound
        # itself, so a page costs one page of index reads however many rows match. The MATCH
        # looks up a bounded number of trigrams (search.fts5_query); `instr` keeps the rows
        # that contain the whole key.
        fts_rowid: ColumnElement[int] = _fts.c.rowid
        statement = base.join(_fts, fts_rowid == Thought.id).where(
            _FTS_MATCH, func.instr(Thought.search_text, bindparam("key", type_=Text)) > 0
        )
        return _keyset(statement, fts_rowid, order, has_cursor)
    # PostgreSQL: pg_trgm GIN index on search_text; the pattern is a parameter, and the planner
    # plans each execution for its value (custom plans, see main.py), so it picks the index for
    # a rare word and a walk of the primary key for a common one.
    statement = base.where(
        Thought.search_text.like(bindparam("pattern", type_=Text), escape=LIKE_ESCAPE)
    )
    if kind is Kind.LIKE_WINDOWS:
        # The ids :low to :high, in windows :window and :next_window (see SearchSpan). The
        # windows are a condition of the index: `&&` of GIN's array operator class, on bigints
        # like the index's `ARRAY[id / 65536]`. The id range lets a walk of the primary key
        # (common words) start inside the windows instead of filtering its way there.
        windows = array(
            [
                cast(bindparam("window", type_=BigInteger), BigInteger),
                cast(bindparam("next_window", type_=BigInteger), BigInteger),
            ]
        )
        statement = statement.where(
            _ID_WINDOW.overlap(windows),
            Thought.id >= bindparam("low", type_=BigInteger),
            Thought.id <= bindparam("high", type_=BigInteger),
        )
        return _keyset(statement, Thought.id, order, has_cursor=False)
    return _keyset(statement, Thought.id, order, has_cursor)


def _search_values(dialect: str, query: str) -> tuple[Kind, dict[str, Any]]:
    key = search_key(query)
    if not key:
        return Kind.ALL, {}
    if not uses_index(key):
        return Kind.SCAN, {"key": key}
    if dialect == "sqlite":
        return Kind.FTS, {"fts_query": fts5_query(key), "key": key}
    return Kind.LIKE, {"pattern": like_contains_pattern(key)}


@dataclass(frozen=True)
class SearchSpan:
    """Where a page of a PostgreSQL search looks first: the ids `low` to `high` (both included),
    from the first id the page may hold to the far end of the next window in page order (see
    SEARCH_WINDOW). So the span holds the ids of one whole window at least, wherever in its
    window the page starts (one window alone would hold only a few ids when the page starts
    near the window's edge, newly begun by the latest thoughts for instance, and the page would
    mostly come from the slow search beyond it). At most two windows: `window` and
    `next_window`.
    """

    window: int
    next_window: int
    low: int
    high: int

    @classmethod
    def starting_at(cls, first_id: int, order: Order) -> SearchSpan | None:
        """The span of a page whose first possible id is `first_id` (in `order`); None for ids
        below zero: PostgreSQL's `id / 65536` rounds those towards zero, Python's `//` down.
        Identity ids start at 1, so only a made-up cursor gets there; the page is then one plain
        query."""
        if not 0 <= first_id <= _MAX_ID:
            return None
        window = first_id // SEARCH_WINDOW
        if order == "desc":
            low = max(0, (window - 1) * SEARCH_WINDOW)
            return cls(window, window - 1, low, first_id)
        high = min(_MAX_ID, (window + 2) * SEARCH_WINDOW - 1)
        return cls(window, window + 1, first_id, high)

    def values(self) -> dict[str, Any]:
        """The statement's values: its parameters are named as the fields."""
        return asdict(self)

    def rest_after(self, order: Order) -> int:
        """The cursor of the ids beyond the span, in page order."""
        return self.low if order == "desc" else self.high


def _page_values(page: PageRequest) -> dict[str, Any]:
    values: dict[str, Any] = {"limit": page.fetch_limit}
    if page.after is not None:
        values["after"] = page.after
    return values


def by_user_statement(username: str, page: PageRequest) -> ThoughtSelect:
    """One page of a user's thoughts, with its values bound (for EXPLAIN)."""
    statement = shape("any", Kind.BY_USER, page.order, page.after is not None)
    return statement.params(username=username, **_page_values(page))


def search_statement(dialect: str, query: str, page: PageRequest) -> ThoughtSelect:
    """The SELECT answering one page of a search, with its values bound (for EXPLAIN)."""
    kind, values = _search_values(dialect, query)
    statement = shape(dialect, kind, page.order, page.after is not None)
    return statement.params(**values, **_page_values(page))


def search_span_statement(query: str, page: PageRequest, span: SearchSpan) -> ThoughtSelect:
    """The first SELECT of a PostgreSQL search page, its matches in `span`, with its values bound
    (for EXPLAIN). The rest of a short page comes from `search_statement` with the cursor
    `span.rest_after(page.order)`."""
    kind, values = _search_values("postgresql", query)
    if kind is not Kind.LIKE:
        raise ValueError(f"{query!r} is not searched through the trigram index")
    statement = shape("postgresql", Kind.LIKE_WINDOWS, page.order)
    return statement.params(**values, **span.values(), limit=page.fetch_limit)


@dataclass(frozen=True)
class CompiledQuery:
    """A statement compiled for one driver: its SQL and the order of its positional values."""

    sql: str
    names: tuple[str, ...]
    # Values the compiler added itself (SQLite renders LIMIT ? as "LIMIT ? OFFSET ?", 0).
    constants: tuple[tuple[str, Any], ...] = ()

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        given = {**dict(self.constants), **values}
        return [given[name] for name in self.names]


@functools.cache
def _compiled(dialect: Dialect, kind: Kind, order: Order, has_cursor: bool) -> CompiledQuery:
    compiled = shape(dialect.name, kind, order, has_cursor).compile(dialect=dialect)
    constants = tuple((name, value) for name, value in compiled.params.items() if value is not None)
    return CompiledQuery(compiled.string, tuple(compiled.positiontup or ()), constants)


def _utc(value: datetime | str) -> datetime:
    # asyncpg returns timestamptz as aware UTC datetimes; SQLite stores naive UTC text.
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


# username, text, search key, timestamp, Idempotency-Key
NewRow = tuple[str, str, str, datetime, str | None]


class Created(NamedTuple):
    """The outcome of a post: the thought, and whether an earlier post with the same
    Idempotency-Key had made it already (then nothing was stored now)."""

    thought: ThoughtRow
    replayed: bool


def _is_duplicate(error: BaseException) -> bool:
    """The author already has a thought with this Idempotency-Key (the unique index said so)."""
    import asyncpg

    return isinstance(error, asyncpg.UniqueViolationError | sqlite3.IntegrityError)


class PostgresInserts:
    """Posts that arrive together become one multi-row INSERT (servicekit.driver.GroupCommit).

    Every insert holds the insert-order lock from before its id is drawn until its commit, so
    inserts cannot overlap: one at a time, each paid its round trip, its index updates and its
    commit while every other post waited. The benchmark measured about 1 ms of that per post
    (bench/README.md). A group of N posts pays one round trip and one commit.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._group: GroupCommit[NewRow, int] = GroupCommit(
            self._insert, self._insert_each, retryable=postgres_statement_failed
        )

    async def insert(self, row: NewRow) -> int:
        return await self._group.submit(row)

    async def _insert(self, rows: list[NewRow]) -> list[int | BaseException]:
        driver = await self.database.driver()
        columns = [list(column) for column in zip(*rows, strict=True)]
        returned = await driver.write(_INSERT_POSTGRESQL, (*columns, _INSERT_ORDER_LOCK))
        # Committed: from here on nothing may raise, or the rows would be retried (twice).
        ids: dict[tuple[str, str, datetime], list[int]] = {}
        for thought_id, username, text_, timestamp in returned:
            ids.setdefault((username, text_, timestamp), []).append(int(thought_id))
        outcomes: list[int | BaseException] = []
        for username, text_, _, timestamp, _ in rows:
            matching = ids.get((username, text_, timestamp))
            outcomes.append(
                matching.pop() if matching else RuntimeError("inserted row not returned")
            )
        return outcomes

    async def _insert_each(self, rows: list[NewRow]) -> list[int | BaseException]:
        outcomes: list[int | BaseException] = []
        for row in rows:
            try:
                outcomes.extend(await self._insert([row]))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes


class ThoughtRepository:
    """The service's data access. Hot paths run on the driver pool (servicekit.driver: no
    session, no transaction, SQL compiled once); deletes use an ORM session of their own."""

    def __init__(self, database: Database, *, inserts: PostgresInserts | None = None) -> None:
        self.database = database
        self._dialect = database.engine.dialect
        self._inserts = inserts

    @property
    def dialect(self) -> str:
        return self._dialect.name

    async def _fetch(
        self, kind: Kind, values: dict[str, Any], order: Order = "asc"
    ) -> list[ThoughtRow]:
        query = _compiled(self._dialect, kind, order, "after" in values)
        driver = await self.database.driver()
        # A search may be slow (one shorter than a trigram walks the table until it has a page;
        # one of common trigrams reads long index lists): it waits for a turn of the database's
        # slow queries, and gets a 503 when none comes in time (servicekit.admission).
        rows = await driver.fetch(
            query.sql, query.arguments(values), may_be_slow=kind in SLOW_KINDS
        )
        return [ThoughtRow(row[0], row[1], row[2], _utc(row[3])) for row in rows]

    async def _page(self, kind: Kind, page: PageRequest, **values: Any) -> list[ThoughtRow]:
        return await self._fetch(kind, {**values, **_page_values(page)}, page.order)

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
            Kind.BY_KEY, {"username": username, "idempotency_key": idempotency_key}
        )
        return rows[0] if rows else None

    async def _insert(self, username: str, text_: str, idempotency_key: str | None) -> ThoughtRow:
        now = datetime.now(UTC)
        key = search_key(text_)
        if self.dialect == "postgresql":
            inserts = self._inserts or PostgresInserts(self.database)
            thought_id = await inserts.insert((username, text_, key, now, idempotency_key))
            return ThoughtRow(thought_id, username, text_, now)
        # SQLite: the driver commits concurrent writes in groups itself.
        driver = await self.database.driver()
        stored = now.replace(tzinfo=None).strftime(_SQLITE_DATETIME)
        rows = await driver.write(_INSERT_SQLITE, (username, text_, key, stored, idempotency_key))
        return ThoughtRow(int(rows[0][0]), username, text_, now)

    async def get(self, thought_id: int) -> ThoughtRow | None:
        rows = await self._fetch(Kind.ONE, {"id": thought_id})
        return rows[0] if rows else None

    async def list_all(self, page: PageRequest) -> Sequence[ThoughtRow]:
        return await self._page(Kind.ALL, page)

    async def list_by_user(self, username: str, page: PageRequest) -> Sequence[ThoughtRow]:
        return await self._page(Kind.BY_USER, page, username=username)

    async def search(self, query: str, page: PageRequest) -> Sequence[ThoughtRow]:
        """Thoughts whose text contains `query` case-insensitively (search.matches), one page."""
        kind, values = _search_values(self.dialect, query)
        if kind is Kind.LIKE:
            return await self._search_by_span(values, page)
        return await self._page(kind, page, **values)

    async def _search_by_span(self, values: dict[str, Any], page: PageRequest) -> list[ThoughtRow]:
        """A page of Kind.LIKE: the matches in the page's span (SearchSpan), then, if they do not
        fill the page, the rest from the matches beyond it. The same rows as one Kind.LIKE query
        for the whole page; it costs the span's matches, plus, only when those are too few for
        a page, what the one query cost."""
        order = page.order
        if page.after is not None:
            first_id = page.after - 1 if order == "desc" else page.after + 1
        else:
            # The newest (desc) or oldest (asc) thought: one step down the primary key.
            edge = await self._fetch(Kind.ALL, {"limit": 1}, order)
            if not edge:
                return []
            first_id = edge[0].id
        span = SearchSpan.starting_at(first_id, order)
        if span is None:
            return await self._page(Kind.LIKE, page, **values)
        limit = page.fetch_limit
        rows = await self._fetch(
            Kind.LIKE_WINDOWS, {**values, **span.values(), "limit": limit}, order
        )
        if len(rows) < limit:
            beyond = {**values, "after": span.rest_after(order), "limit": limit - len(rows)}
            rows += await self._fetch(Kind.LIKE, beyond, order)
        return rows

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


async def get_repository(request: Request) -> ThoughtRepository:
    # The app's database, not a session per request: the hot paths need none (see above).
    # async: a plain `def` dependency would run in a worker thread (servicekit.deps).
    state = request.app.state
    inserts = getattr(state, "thought_inserts", None)
    if inserts is None:  # one per app, so that concurrent posts meet in it
        inserts = state.thought_inserts = PostgresInserts(state.db)
    return ThoughtRepository(state.db, inserts=inserts)


RepositoryDep = Annotated[ThoughtRepository, Depends(get_repository)]
