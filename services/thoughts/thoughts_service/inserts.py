"""Posts on PostgreSQL: those that arrive together become one multi-row INSERT, in id order."""

from __future__ import annotations

from datetime import datetime

from servicekit.db import Database
from servicekit.driver import GroupCommit, postgres_statement_failed

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

# username, text, search key, timestamp, Idempotency-Key
NewRow = tuple[str, str, str, datetime, str | None]


class PostgresInserts:
    """Posts that arrive together become one multi-row INSERT (servicekit.driver.GroupCommit),
    the only batching of a PostgreSQL post (the driver runs the INSERT as it is).

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
