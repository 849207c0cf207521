"""The driver pool of SQLite: reader threads with interruptible statements, one writer thread
that commits in groups, the writers' file lock shared by a server's processes, and the thread that
checkpoints the WAL."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from servicekit.admission import Admission
from servicekit.driver.group_commit import GroupCommit
from servicekit.driver.interface import LastAnswer, Outcome, Row, Statement, StatementTimeout

# SQLite calls the progress handler every this many virtual machine instructions (~0.1 ms).
_PROGRESS_STEPS = 10_000
_WRITER_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    # The checkpointer thread copies the WAL back into the database instead (see below).
    "PRAGMA wal_autocheckpoint = 0",
)
# How often the checkpointer thread copies committed WAL pages into the database file.
CHECKPOINT_SECONDS = 1.0


class _Reader:
    """A read-only connection whose statements are interrupted past a deadline."""

    def __init__(self, path: str, timeout: float | None) -> None:
        # Autocommit (isolation_level=None): every statement is its own transaction.
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA query_only = ON")
        # A reader waits only in rare WAL recovery cases; keep such a wait short.
        self.connection.execute("PRAGMA busy_timeout = 100")
        self.connection.set_progress_handler(self._past_deadline, _PROGRESS_STEPS)
        self.timeout = timeout
        self._deadline = float("inf")

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        self._deadline = time.monotonic() + self.timeout if self.timeout else float("inf")
        try:
            return self.connection.execute(sql, arguments).fetchall()
        except sqlite3.OperationalError as exc:
            if str(exc) == "interrupted":
                raise StatementTimeout(f"statement interrupted after {self.timeout}s") from None
            raise
        finally:
            self._deadline = float("inf")


class SqliteDriverPool:
    """Reads in a reader thread (a read that may be slow, in one of the slow queries' threads);
    writes in another thread, in groups (GroupCommit: one thread switch and one acquisition of
    the write lock per group)."""

    def __init__(
        self,
        path: str,
        statement_timeout: float | None = None,
        *,
        slow_queries: Admission,
        last_answer: LastAnswer | None = None,
    ) -> None:
        self._path = path
        self._last_answer = last_answer or LastAnswer()
        self._statement_timeout = statement_timeout
        self._slow_queries = slow_queries
        # Each reading thread has its own connection (a connection runs one statement at once).
        self._readers: list[_Reader] = []
        self._readers_lock = threading.Lock()
        self._thread_reader = threading.local()
        self._read_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        # As many threads as turns: an admitted slow read never waits for a thread.
        self._slow_threads = ThreadPoolExecutor(
            max_workers=slow_queries.limit, thread_name_prefix="sqlite-slow"
        )
        # Used by the writer thread only; group transactions are begun and ended explicitly.
        self._writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in _WRITER_PRAGMAS:
            self._writer.execute(pragma)
        # The writers of all worker processes take turns through this file lock before they ask
        # SQLite for its write lock. A writer that finds SQLite's lock taken sleeps in SQLite's
        # busy handler, in steps of up to 100 ms, however soon the lock is free again: the
        # benchmark's posts waited up to 1.4 s (p99) while the other worker wrote. Blocked on
        # the file lock instead, the writer thread is woken by the kernel as soon as the
        # other one commits. SQLite's own locking still guards the database; writers that do
        # not take this lock (migrations, the loader) simply wait in the busy handler as before.
        self._write_turn = os.open(path + "-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._writes: GroupCommit[Statement, list[Row]] = GroupCommit(
            self._commit_group, self._one_by_one
        )
        # SQLite's automatic checkpoint runs in the connection that commits, every 1,000 WAL
        # pages: copying them into the database file took hundreds of milliseconds at a million
        # thoughts (FTS5 index pages all over the file), and every write waiting behind it
        # stalled (p99 of posting ~0.6 to 1 s). A passive checkpoint from a thread of its own
        # runs beside the writer instead; readers and writers never wait for it.
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_until_closed,
            args=(path,),
            name="sqlite-checkpoint",
            daemon=True,
        )
        self._checkpointer.start()

    def _checkpoint_until_closed(self, path: str) -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_SECONDS):
                # Busy (another process is checkpointing): the next turn will do.
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        statement_timeout: float | None = None,
        slow_queries: Admission,
        last_answer: LastAnswer | None = None,
    ) -> SqliteDriverPool:
        return cls(path, statement_timeout, slow_queries=slow_queries, last_answer=last_answer)

    def _read_now(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        """In a reading thread: the statement on that thread's own connection."""
        reader: _Reader | None = getattr(self._thread_reader, "reader", None)
        if reader is None:
            reader = self._thread_reader.reader = _Reader(self._path, self._statement_timeout)
            with self._readers_lock:
                self._readers.append(reader)
        return reader.fetch(sql, arguments)

    async def fetch(
        self, sql: str, arguments: Sequence[Any], *, may_be_slow: bool = False
    ) -> list[Row]:
        loop = asyncio.get_running_loop()
        if may_be_slow:
            async with self._slow_queries.turn():
                rows = await loop.run_in_executor(
                    self._slow_threads, self._read_now, sql, arguments
                )
        else:
            rows = await loop.run_in_executor(self._read_thread, self._read_now, sql, arguments)
        self._last_answer.record()
        return rows

    async def write(self, sql: str, arguments: Sequence[Any]) -> list[Row]:
        rows = await self._writes.submit((sql, arguments))
        self._last_answer.record()
        return rows

    async def _commit_group(self, group: list[Statement]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._commit_group_now, group)

    async def _one_by_one(self, group: list[Statement]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._one_by_one_now, group)

    def _commit_group_now(self, group: list[Statement]) -> list[Outcome]:
        writer = self._writer
        fcntl.flock(self._write_turn, fcntl.LOCK_EX)  # our turn among the workers (see above)
        try:
            writer.execute("BEGIN IMMEDIATE")  # waits for the write lock (busy_timeout)
            try:
                outcomes: list[Outcome] = [
                    writer.execute(sql, arguments).fetchall() for sql, arguments in group
                ]
                writer.execute("COMMIT")
            except BaseException:
                writer.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._write_turn, fcntl.LOCK_UN)
        return outcomes

    def _one_by_one_now(self, group: list[Statement]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for statement in group:
            try:
                outcomes.extend(self._commit_group_now([statement]))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def close(self) -> None:
        self._stop_checkpoints.set()
        self._checkpointer.join(timeout=10)
        self._thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)
        self._slow_threads.shutdown(wait=True)
        for reader in self._readers:
            reader.connection.close()
        self._writer.close()
        os.close(self._write_turn)
