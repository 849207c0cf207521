"""Stored rows. The password hash lives here and only here: no output model carries it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from users_service.usernames import USERNAME_MAX


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True, nullable=False)
    # users_service.usernames.username_key, unique: `Bruce` and a full-width `bruce` are taken
    # by `bruce`.
    # NULL only for rows older than the key that could not take one (migration 0002).
    username_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    creation: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set when the account is deleted: the row stays so that its name is never given to a new
    # account, which would inherit the thoughts owned by that name (migration 0003).
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
