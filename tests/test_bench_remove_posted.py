"""bench/run.py removes what "create thought" posted and, on PostgreSQL, the dead rows it leaves.

Without the VACUUM every run left ~29,000 dead tuples at the top of the id range (autovacuum
waits for 20 % of the table), and every first page of a newest-first search walked over them
in the primary key: the "frontend search" figures grew with the number of runs made before.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from testkit import DatabaseFactory, need, postgres_available

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "thoughts" / "migrations"


@pytest.fixture
def run_module() -> ModuleType:
    # The benchmark's modules import each other by name from bench/, as when run as scripts.
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module("run")
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_posted_thoughts_go_and_leave_no_dead_rows(
    database_factory: DatabaseFactory, tmp_path: Path, run_module: ModuleType
) -> None:
    reason = postgres_available()
    if reason:
        need(reason)
    url = database_factory.fresh("postgresql", MIGRATIONS).replace("+asyncpg", "")
    writer = run_module.WRITER
    with psycopg.connect(url, autocommit=True) as connection:
        for username, count in (("someone", 50), (writer, 2000)):
            connection.execute(
                "INSERT INTO thoughts (username, text, search_text, timestamp) "
                "SELECT %s, 'a text', 'a text', now() FROM generate_series(1, %s)",
                (username, count),
            )
    databases = run_module.Databases("postgresql", tmp_path, {"thoughts": url, "users": url})
    databases.remove_posted()
    with psycopg.connect(url, autocommit=True) as connection:
        left = connection.execute("SELECT username, count(*) FROM thoughts GROUP BY 1").fetchall()
        assert left == [("someone", 50)]
        # VACUUM (not autovacuum, which waits for 20 % of the table) removed the dead rows.
        stats = connection.execute(
            "SELECT last_vacuum IS NOT NULL, n_dead_tup FROM pg_stat_user_tables "
            "WHERE relname = 'thoughts'"
        ).fetchone()
        assert stats == (True, 0)
