"""The SELECTs of the service, written once as SQLAlchemy Core statements with named parameters.

Each query the service runs is a ThoughtQuery; `build_select` gives its statement for a dialect
and page shape (thoughts_service.compiled compiles each once per driver). test_query_plans.py
explains the plans they get. Search is dialect-specific; see thoughts_service.search.
"""

from __future__ import annotations

import enum
import functools
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    SQLColumnExpression,
    Text,
    bindparam,
    cast,
    column,
    func,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import array

from servicekit.pagination import Order, PageRequest
from thoughts_service.models import Thought
from thoughts_service.search import (
    LIKE_ESCAPE,
    fts5_query,
    like_contains_pattern,
    search_key,
    uses_index,
)
from thoughts_service.search_windows import ID_WINDOW, SearchSpan

# The FTS5 table of the SQLite migration; only its rowid (= thoughts.id) is ever read.
_fts = table("thoughts_fts", column("rowid"))
_FTS_MATCH = text("thoughts_fts MATCH :fts_query").bindparams(bindparam("fts_query", type_=Text))


class ThoughtQuery(enum.Enum):
    """The shapes of SELECT the service runs; each is compiled once per dialect and page shape."""

    ONE = "one"  # by id
    ALL = "all"  # every thought, a page
    BY_USER = "by user"  # one author's, a page
    SCAN = "scan"  # search for a key shorter than a trigram: filter while walking ids
    FTS = "fts"  # SQLite search: the FTS5 trigram table
    LIKE = "like"  # PostgreSQL search: LIKE served by the pg_trgm GIN index
    LIKE_WINDOWS = "like windows"  # PostgreSQL search: LIKE within two windows of ids
    # The same for a first page, with the newest (desc) or oldest (asc) id as a fifth column:
    # the span was made from an edge read before, and the edge read now checks it.
    LIKE_FIRST_WINDOWS = "like first windows"
    BY_KEY = "by idempotency key"  # the thought an author's post with this key made


# Searches: each waits for a turn of the driver pool's slow queries (see ThoughtRepository._fetch).
SLOW_QUERIES = frozenset(
    {
        ThoughtQuery.SCAN,
        ThoughtQuery.FTS,
        ThoughtQuery.LIKE,
        ThoughtQuery.LIKE_WINDOWS,
        ThoughtQuery.LIKE_FIRST_WINDOWS,
    }
)

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
def build_select(
    dialect: str, kind: ThoughtQuery, order: Order = "asc", has_cursor: bool = False
) -> ThoughtSelect:
    """The statement of one kind of query for `dialect`, its values as named parameters."""
    base = select(*_COLUMNS)
    if kind is ThoughtQuery.ONE:
        return base.where(Thought.id == bindparam("id", type_=BigInteger))
    if kind is ThoughtQuery.ALL:
        return _keyset(base, Thought.id, order, has_cursor)
    if kind is ThoughtQuery.BY_KEY:
        # The partial unique index ux_thoughts_username_idempotency_key (migration 0003).
        return base.where(
            Thought.username == bindparam("username"),
            Thought.idempotency_key == bindparam("idempotency_key"),
        )
    if kind is ThoughtQuery.BY_USER:
        # A range scan of ix_thoughts_username_id, in page order.
        return _keyset(
            base.where(Thought.username == bindparam("username")), Thought.id, order, has_cursor
        )
    if kind is ThoughtQuery.SCAN:
        # Too short for any trigram: walk the primary key in page order with a filter; LIMIT
        # stops the walk as soon as one page is found.
        key: BindParameter[str] = bindparam("key", type_=Text)
        position = (
            func.instr(Thought.search_text, key)
            if dialect == "sqlite"
            else func.strpos(Thought.search_text, key)
        )
        return _keyset(base.where(position > 0), Thought.id, order, has_cursor)
    if kind is ThoughtQuery.FTS:
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
    if kind in (ThoughtQuery.LIKE_WINDOWS, ThoughtQuery.LIKE_FIRST_WINDOWS):
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
        low = Thought.id >= bindparam("low", type_=BigInteger)
        high = Thought.id <= bindparam("high", type_=BigInteger)
        if kind is ThoughtQuery.LIKE_WINDOWS:
            statement = statement.where(ID_WINDOW.overlap(windows), low, high)
            return _keyset(statement, Thought.id, order, has_cursor=False)
        # A first page: no ids lie beyond the edge, so only the bound at the far end of the span
        # is written. The other one would say nothing, yet cost every planning a look at the
        # end of the primary key (an id past the column's histogram is checked in the index),
        # which walks over every dead entry there, e.g. after many of the newest were deleted.
        bound = low if order == "desc" else high
        statement = _keyset(
            statement.where(ID_WINDOW.overlap(windows), bound), Thought.id, order, has_cursor=False
        )
        # The edge as a scalar subquery of the select list (an InitPlan, run once per
        # execution, one step down the primary key): it leaves the estimates of the WHERE
        # alone, whose values are all known when the statement is planned.
        edge = func.max(Thought.id) if order == "desc" else func.min(Thought.id)
        return statement.add_columns(select(edge).correlate(None).scalar_subquery().label("edge"))
    return _keyset(statement, Thought.id, order, has_cursor)


def search_values(dialect: str, query: str) -> tuple[ThoughtQuery, dict[str, Any]]:
    key = search_key(query)
    if not key:
        return ThoughtQuery.ALL, {}
    if not uses_index(key):
        return ThoughtQuery.SCAN, {"key": key}
    if dialect == "sqlite":
        return ThoughtQuery.FTS, {"fts_query": fts5_query(key), "key": key}
    return ThoughtQuery.LIKE, {"pattern": like_contains_pattern(key)}


def page_values(page: PageRequest) -> dict[str, Any]:
    values: dict[str, Any] = {"limit": page.fetch_limit}
    if page.after is not None:
        values["after"] = page.after
    return values


def by_user_statement(username: str, page: PageRequest) -> ThoughtSelect:
    """One page of a user's thoughts, with its values bound (for EXPLAIN)."""
    statement = build_select("any", ThoughtQuery.BY_USER, page.order, page.after is not None)
    return statement.params(username=username, **page_values(page))


def search_statement(dialect: str, query: str, page: PageRequest) -> ThoughtSelect:
    """The SELECT answering one page of a search, with its values bound (for EXPLAIN)."""
    kind, values = search_values(dialect, query)
    statement = build_select(dialect, kind, page.order, page.after is not None)
    return statement.params(**values, **page_values(page))


def search_span_statement(query: str, page: PageRequest, span: SearchSpan) -> ThoughtSelect:
    """The first SELECT of a PostgreSQL search page, its matches in `span`, with its values bound
    (for EXPLAIN). The rest of a short page comes from `search_statement` with the cursor
    `span.rest_after(page.order)`."""
    kind, values = search_values("postgresql", query)
    if kind is not ThoughtQuery.LIKE:
        raise ValueError(f"{query!r} is not searched through the trigram index")
    statement = build_select("postgresql", ThoughtQuery.LIKE_WINDOWS, page.order)
    return statement.params(**values, **span.values(), limit=page.fetch_limit)
