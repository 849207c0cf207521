"""The database drivers' own connections, for the few statements a service runs on every request.

SQLAlchemy builds, checks and compiles statements, maps rows and manages sessions; the cost is
fine for most code, and dominant on a hot path whose query takes the database microseconds. The
benchmark (bench/README.md) measured, per request on a 2-core machine: a session or even a bare
`AsyncEngine.connect()` (pool checkout with its pre-ping, which asyncpg runs as BEGIN, ping,
ROLLBACK) took several times the CPU of asyncpg's own pool running the statement itself. So a
service can compile its hot statements once with SQLAlchemy and run them here:

- PostgreSQL: up to `size` asyncpg connections in a minimal pool (ConnectionPool; statements
  are prepared and cached by asyncpg). A broken connection is replaced when next needed.
- SQLite: plain `sqlite3` connections (read-only, autocommit), one per reading thread. No
  statement runs on the event loop: an indexed read takes SQLite 10 to 800 microseconds, but a
  search of a thousand common characters took it seconds, and run inline that stopped every
  other request of the process for as long (issue 14). Reads run in a reader thread (one
  thread switch, not aiosqlite's two); a read that runs longer than the statement timeout is
  interrupted (SQLite's progress handler). Writes go to one connection in a thread of its own,
  so that waiting for another process's write lock (busy_timeout) never blocks the loop either.

A read that may be slow (a scan, a search) takes a turn of the pool's `slow_queries`
(servicekit.admission): at most so many run at once per process, in threads (SQLite) or
connections (PostgreSQL) of their own; the others wait their turn only so long, then raise
Overloaded (503 with Retry-After), so that a burst of them never queues without limit nor takes
every connection or core from the indexed reads.

SQLite's writes are committed in groups (GroupCommit: one thread switch and one turn of the
write lock per group). A PostgreSQL write is one statement in its own transaction: a caller whose
writes arrive together groups them into one statement itself, with GroupCommit (the thoughts
service's posts: one multi-row INSERT per group), so nothing is batched twice.

Both offer `fetch(sql, arguments)` and `write(sql, arguments)`, with SQL compiled for the
driver's parameter style (`$1` for asyncpg, `?` for sqlite3). A statement that runs longer than
the pool's `statement_timeout` raises StatementTimeout. On PostgreSQL that is the server's own
`statement_timeout` setting of the pool's connections: asyncpg's client-side timeout costs a
timer per query, a measurable part of a 1 ms request.

The package, a module per part:

- interface.py: DriverPool (what both offer), Row, StatementTimeout
- group_commit.py: GroupCommit, writes that arrive together committed as one group
- connection_pool.py: ConnectionPool, the hand-written asyncpg pool (and why not asyncpg's own)
- postgres.py: PostgresDriverPool
- sqlite.py: SqliteDriverPool, its reader and writer threads, writers' file lock, checkpointer
- opening.py: open_driver_pool, LazyDriverPool (opened on first use with options fixed when
  created)
"""

from servicekit.driver.connection_pool import ConnectionPool, postgres_statement_failed
from servicekit.driver.group_commit import GroupCommit
from servicekit.driver.interface import DriverPool, LastAnswer, Row, StatementTimeout
from servicekit.driver.opening import DriverOptions, LazyDriverPool, open_driver_pool
from servicekit.driver.postgres import PostgresDriverPool
from servicekit.driver.sqlite import SqliteDriverPool

__all__ = [
    "ConnectionPool",
    "DriverOptions",
    "DriverPool",
    "GroupCommit",
    "LastAnswer",
    "LazyDriverPool",
    "PostgresDriverPool",
    "Row",
    "SqliteDriverPool",
    "StatementTimeout",
    "open_driver_pool",
    "postgres_statement_failed",
]
