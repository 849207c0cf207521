"""Every query the service runs, one list (an owner) at a time."""

from __future__ import annotations

from typing import Annotated, NamedTuple

from fastapi import Depends, Request
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.db import Database
from servicekit.deps import SessionDep
from servicekit.pagination import PageRequest
from tasks_service.ids import new_task_id
from tasks_service.models import Task

# PostgreSQL: inserts take this transaction-scoped advisory lock so that seqs become visible in
# seq order. Without it, a transaction holding seq 10 may commit after one holding seq 11; a
# reader paging in between sees 11, continues "after 11" and never sees 10. SQLite needs
# nothing: its single writer already assigns and commits seqs in order.
_INSERT_ORDER_LOCK = 0x7461_736B  # "task"


class TaskRow(NamedTuple):
    seq: int
    id: str
    task: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "task": self.task}


class TaskRepository:
    def __init__(self, session: AsyncSession, dialect: str) -> None:
        self._session = session
        self._dialect = dialect

    async def create(self, owner: str, task: str) -> TaskRow:
        async with self._session.begin():
            if self._dialect == "postgresql":
                await self._session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _INSERT_ORDER_LOCK}
                )
            row = Task(id=new_task_id(), owner=owner, task=task)
            self._session.add(row)
            await self._session.flush()
            return TaskRow(row.seq, row.id, row.task)

    async def page(self, owner: str, page: PageRequest) -> list[TaskRow]:
        """One page of the owner's list, oldest first by default, `page.fetch_limit` rows."""
        statement = select(Task.seq, Task.id, Task.task).where(Task.owner == owner)
        if page.after is not None:
            statement = statement.where(
                Task.seq > page.after if page.order == "asc" else Task.seq < page.after
            )
        ordering = Task.seq.asc() if page.order == "asc" else Task.seq.desc()
        result = await self._session.execute(statement.order_by(ordering).limit(page.fetch_limit))
        return [TaskRow(*row) for row in result.all()]

    async def update(self, owner: str, task_id: str, task: str) -> bool:
        """False when the owner's list has no such task."""
        async with self._session.begin():
            result = await self._session.execute(
                update(Task).where(Task.id == task_id, Task.owner == owner).values(task=task)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def delete(self, owner: str, task_id: str) -> bool:
        async with self._session.begin():
            result = await self._session.execute(
                delete(Task).where(Task.id == task_id, Task.owner == owner)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def delete_all(self, owner: str) -> int:
        async with self._session.begin():
            result = await self._session.execute(delete(Task).where(Task.owner == owner))
        return int(result.rowcount)  # type: ignore[attr-defined]


async def get_repository(session: SessionDep, request: Request) -> TaskRepository:
    database: Database = request.app.state.db
    return TaskRepository(session, database.dialect)


RepositoryDep = Annotated[TaskRepository, Depends(get_repository)]
