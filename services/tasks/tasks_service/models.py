"""The stored row. `seq` orders the list and keys its pages; clients only ever see `id`."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

OWNER_MAX = 50  # a MyThoughts username
TASK_MAX = 500
# The tutorial's one shared list. No username is empty, so it never meets anybody's own list.
SHARED_LIST = ""

# 64-bit on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the (64-bit) rowid.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # A list's pages: WHERE owner = ? AND seq > ? ORDER BY seq LIMIT ?
        Index("ix_tasks_owner_seq", "owner", "seq"),
        # PUT and DELETE find a task by its public id.
        UniqueConstraint("id", name="uq_tasks_id"),
        # AUTOINCREMENT: SQLite never reuses the seq of a deleted row, so cursors stay meaningful.
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True)
    id: Mapped[str] = mapped_column(String(24))
    owner: Mapped[str] = mapped_column(String(OWNER_MAX))
    task: Mapped[str] = mapped_column(String(TASK_MAX))
