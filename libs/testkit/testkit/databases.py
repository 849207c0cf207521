"""Real databases for tests: a fresh, migrated SQLite file or PostgreSQL database per test, cloned
from a template migrated once per session (PostgreSQL: CREATE DATABASE ... TEMPLATE), so tests are
isolated without paying for a migration each. Under CI=true a missing PostgreSQL fails the run;
locally those variants skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from servicekit.migrations import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(reason: str) -> None:
    """Skip locally, fail under CI: a CI run must never silently skip a real dependency."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable ({type(exc).__name__})"


def pg_execute(sql: str) -> None:
    """Runs one statement on the server as the admin user (CREATE or DROP DATABASE)."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)


def _async_url(name: str) -> str:
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


@dataclass
class DatabaseFactory:
    """Hands out fresh migrated databases for a service's migrations folder."""

    root: Path
    worker: str
    _templates: dict[tuple[str, Path], str] = field(default_factory=dict)
    _created: list[str] = field(default_factory=list)

    def _template(self, backend: str, migrations_dir: Path) -> str:
        key = (backend, migrations_dir)
        if key not in self._templates:
            # The count keeps apart folders whose parents share a name (two `tests/...`).
            n = len(self._templates)
            tag = f"{migrations_dir.parent.name}_{n}_{self.worker}_{os.getpid()}"
            if backend == "sqlite":
                path = self.root / f"template_{tag}.db"
                upgrade(migrations_dir, f"sqlite+aiosqlite:///{path}")
                self._templates[key] = str(path)
            else:
                name = f"mt_tpl_{tag}"
                pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                pg_execute(f'CREATE DATABASE "{name}"')
                self._created.append(name)
                upgrade(migrations_dir, _async_url(name))
                self._templates[key] = name
        return self._templates[key]

    def fresh(self, backend: str, migrations_dir: Path) -> str:
        template = self._template(backend, migrations_dir)
        if backend == "sqlite":
            path = self.root / f"test_{uuid.uuid4().hex}.db"
            shutil.copyfile(template, path)
            return f"sqlite+aiosqlite:///{path}"
        name = f"mt_test_{uuid.uuid4().hex[:16]}"
        pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self._created.append(name)
        return _async_url(name)

    def empty(self, backend: str) -> str:
        """An unmigrated database, for migration tests."""
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.root / f'empty_{uuid.uuid4().hex}.db'}"
        name = f"mt_empty_{uuid.uuid4().hex[:16]}"
        pg_execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return _async_url(name)

    def drop_all(self) -> None:
        # Every DROP DATABASE waits for a checkpoint (~1 s each here); run side by side they
        # share checkpoints, so a session's hundred databases go in about a second, not minutes.
        names = list(reversed(self._created))
        self._created.clear()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(
                pool.map(
                    lambda name: pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'),
                    names,
                )
            )
