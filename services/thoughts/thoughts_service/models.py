"""The stored row. `search_text` is internal (the search key) and no output model carries it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Index, Integer, String, Text, text
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from thoughts_service.search import search_key

USERNAME_MAX = 50
# A thought's text: at most TEXT_MAX user-perceived characters (servicekit.text) and, whatever
# they are made of, at most TEXT_MAX_CODE_POINTS code points (the column, migration 0004).
TEXT_MAX = 250
TEXT_MAX_CODE_POINTS = 1000
IDEMPOTENCY_KEY_MAX = 255

# 64-bit ids on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the (64-bit) rowid.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on both databases.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so UTC is stored without an offset
    and the offset is put back when reading.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The pg_trgm GIN index of search (by id window and trigrams), created by the PostgreSQL branch
# of migrations/versions/0002 (it replaced 0001's `ix_thoughts_search_text_trgm`).
TRIGRAM_INDEX = "ix_thoughts_id_window_search_text_trgm"


def _search_key_of_text(context: DefaultExecutionContext) -> str:
    # Any INSERT that does not give `search_text` derives it from `text`, so that no code path
    # (ORM, bulk loaders) can store a thought that search cannot find.
    parameters: dict[str, Any] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    return search_key(parameters["text"])


class Thought(Base):
    """A thought. Rows are never updated (there is no edit), only inserted and deleted."""

    __tablename__ = "thoughts"
    __table_args__ = (
        # "My thoughts" pages: WHERE username = ? AND id > ? ORDER BY id LIMIT ?
        Index("ix_thoughts_username_id", "username", "id"),
        # One thought per (author, Idempotency-Key): a repeated post is answered with the first.
        # Partial, so that posts without a key (most) pay no index update for it.
        Index(
            "ux_thoughts_username_idempotency_key",
            "username",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_key IS NOT NULL"),
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        # Search indexes (FTS5 table / pg_trgm GIN index) are created by the migration.
        # AUTOINCREMENT: SQLite never reuses the id of a deleted row, so cursors stay meaningful.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    text: Mapped[str] = mapped_column(String(TEXT_MAX_CODE_POINTS))
    search_text: Mapped[str] = mapped_column(Text, default=_search_key_of_text)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The client's Idempotency-Key of the post that made it (migration 0003), if it sent one.
    idempotency_key: Mapped[str | None] = mapped_column(String(IDEMPOTENCY_KEY_MAX), default=None)
