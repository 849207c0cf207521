"""Database URLs, the SQLite engine's pragmas, sessions and Alembic migrations on both backends."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from servicekit.db import Database, DatabaseOptions, parse_database_url
from servicekit.migrations import alembic_config, current_revision, head_revision, upgrade
from testkit import DatabaseFactory


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("mysql+aiomysql://app@db/app", "mysql+aiomysql"),
        ("postgresql://app@db/app", "postgresql"),
        ("postgresql+psycopg://app@db/app", "postgresql+psycopg"),
        ("sqlite:///var/app.db", "sqlite"),
    ],
)
def test_unsupported_drivers_are_refused_with_what_to_use(url: str, driver: str) -> None:
    with pytest.raises(ValueError, match="is not supported") as caught:
        parse_database_url(url)
    assert str(caught.value) == (
        f"DATABASE_URL driver {driver!r} is not supported; "
        "use one of sqlite+aiosqlite, postgresql+asyncpg"
    )


def test_a_malformed_url_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^DATABASE_URL is not a valid URL: "):
        parse_database_url("just words")


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///var/app.db", "postgresql+asyncpg://app:pw@db:5432/app"]
)
def test_supported_urls_parse(url: str) -> None:
    assert parse_database_url(url).render_as_string(hide_password=False) == url


async def test_sqlite_engine_uses_wal_and_its_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "app.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with database.engine.connect() as connection:
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        await database.dispose()

    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 5000,
    }
    assert path.exists()
    assert database.dialect == "sqlite"


async def test_an_in_memory_sqlite_database_works() -> None:
    database = Database("sqlite+aiosqlite://")
    try:
        await database.ping()
        async with database.engine.connect() as connection:
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
    finally:
        await database.dispose()
    assert foreign_keys == 1


async def test_ping_reaches_both_backends(migrated_url: str, db_backend: str) -> None:
    database = Database(migrated_url, DatabaseOptions(pool_size=2))
    try:
        await database.ping()
    finally:
        await database.dispose()
    assert database.dialect == db_backend


async def test_sessions_from_the_kit_read_and_write(
    start_app: Callable[..., Any], make_settings: Callable[..., Any], migrated_url: str
) -> None:
    client = await start_app(make_settings(database_url=migrated_url))

    first = await client.post("/db/notes", json={"text": "one"})
    second = await client.post("/db/notes", json={"text": "two"})

    assert (first.status_code, first.json()) == (201, {"count": 1})
    assert (second.status_code, second.json()) == (201, {"count": 2})


def test_migrations_reach_head_on_both_backends(
    database_factory: DatabaseFactory, db_backend: str, example: Any
) -> None:
    url = database_factory.empty(db_backend)
    upgrade(example.MIGRATIONS_DIR, url)

    assert head_revision(example.MIGRATIONS_DIR) == "0001"
    assert _revision(url) == "0001"
    upgrade(example.MIGRATIONS_DIR, url)  # a second run is a no-op
    assert _revision(url) == "0001"


def _revision(url: str) -> str | None:
    async def read() -> str | None:
        database = Database(url)
        try:
            return await current_revision(database.engine)
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_one_pool_size_covers_both_pools() -> None:
    """DB_POOL_SIZE is the most connections a process holds: SQLAlchemy's pool and the driver
    pool share it, and neither overflows."""
    alone = DatabaseOptions(pool_size=10)
    assert (alone.session_pool_size, alone.driver_pool_size) == (10, 0)
    shared = DatabaseOptions(pool_size=10, driver_pool=True)
    assert (shared.session_pool_size, shared.driver_pool_size) == (2, 8)
    smallest = DatabaseOptions(pool_size=2, driver_pool=True)
    assert (smallest.session_pool_size, smallest.driver_pool_size) == (1, 1)
    with pytest.raises(ValueError, match="pool size of 2 or more"):
        DatabaseOptions(pool_size=1, driver_pool=True)

    database = Database("postgresql+asyncpg://app@db.invalid/app", shared)
    pool = database.engine.pool
    assert (pool.size(), pool._max_overflow) == (2, 0)  # type: ignore[attr-defined]


def test_options_are_fixed_when_the_database_is_created() -> None:
    settings = {"plan_cache_mode": "force_custom_plan"}
    options = DatabaseOptions(server_settings=settings)
    settings["plan_cache_mode"] = "auto"  # the caller's dict is copied, not kept
    assert options.server_settings == {"plan_cache_mode": "force_custom_plan"}
    with pytest.raises(TypeError):
        options.server_settings["work_mem"] = "1GB"  # type: ignore[index]
    with pytest.raises(AttributeError):
        options.pool_size = 3  # type: ignore[misc]


async def test_without_a_driver_pool_there_is_none(migrated_url: str) -> None:
    database = Database(migrated_url)
    try:
        with pytest.raises(RuntimeError, match="without a driver pool"):
            await database.driver()
    finally:
        await database.dispose()


def test_upgrade_refuses_an_unsupported_url(example: Any) -> None:
    with pytest.raises(ValueError, match="driver 'sqlite' is not supported"):
        upgrade(example.MIGRATIONS_DIR, "sqlite:///nowhere.db")


def test_alembic_config_keeps_percent_signs_in_passwords(example: Any) -> None:
    url = "postgresql+asyncpg://app:p%40ss%25word@db/app"
    config = alembic_config(example.MIGRATIONS_DIR, url)
    assert config.get_main_option("sqlalchemy.url") == url
    assert config.get_main_option("script_location") == str(example.MIGRATIONS_DIR)


SECOND_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("tags", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("tags")
"""


def test_templates_of_folders_whose_parents_share_a_name_stay_apart(
    database_factory: DatabaseFactory, db_backend: str, example: Any, tmp_path: Path
) -> None:
    # Another `tests/` folder's migrations, one revision further than the example's.
    other = tmp_path / example.MIGRATIONS_DIR.parent.name / "migrations"
    shutil.copytree(example.MIGRATIONS_DIR, other, ignore=shutil.ignore_patterns("__pycache__"))
    (other / "versions" / "0002_create_tags.py").write_text(SECOND_REVISION, encoding="utf-8")

    first = database_factory.fresh(db_backend, example.MIGRATIONS_DIR)
    second = database_factory.fresh(db_backend, other)
    third = database_factory.fresh(db_backend, example.MIGRATIONS_DIR)

    assert [_revision(first), _revision(second), _revision(third)] == ["0001", "0002", "0001"]
