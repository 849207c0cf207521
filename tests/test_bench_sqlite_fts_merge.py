"""bench/sqlite_fts_merge.py on a small migrated thoughts database: every setting measures the
posts asked for, applies its FTS5 option to the copy, and never writes to the database given."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from servicekit.migrations import upgrade
from thoughts_service.main import MIGRATIONS_DIR

BENCH = Path(__file__).resolve().parents[1] / "bench" / "sqlite_fts_merge.py"


def test_each_setting_measures_its_posts_on_a_copy(tmp_path: Path) -> None:
    database = tmp_path / "thoughts.db"
    upgrade(MIGRATIONS_DIR, f"sqlite+aiosqlite:///{database}")
    before = database.read_bytes()

    done = subprocess.run(
        [sys.executable, str(BENCH), str(database), "default", "automerge=8", "--posts", "50"],
        capture_output=True,
        text=True,
        check=True,
    )

    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["default", "automerge=8"]
    assert all(" posts     50 " in line for line in lines)
    assert database.read_bytes() == before
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM thoughts").fetchone() == (0,)


def test_an_unknown_setting_is_refused_with_what_to_give(tmp_path: Path) -> None:
    database = tmp_path / "thoughts.db"
    upgrade(MIGRATIONS_DIR, f"sqlite+aiosqlite:///{database}")

    done = subprocess.run(
        [sys.executable, str(BENCH), str(database), "pgsz=4"], capture_output=True, text=True
    )

    assert done.returncode == 1
    assert "give default, automerge=N, crisismerge=N or usermerge=N" in done.stderr
