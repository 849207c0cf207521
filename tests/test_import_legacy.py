"""`devtools import-legacy`: the book's databases (its own schema, on SQLite and PostgreSQL)
copied into our migrated databases, then checked through the real services' API: the old
password logs in, the imported thoughts are listed and found by search, new rows get new ids."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, insert

from devtools.import_legacy import DUPLICATE, EMPTY_TEXT, LONG_TEXT, TAKEN_ID, import_legacy
from devtools.legacy_schema import LEGACY_METADATA, thought_model, user_model
from devtools.testing import TEST_OVERRIDES, LocalSystem
from servicekit.migrations import NotMigrated
from testkit.databases import POSTGRES_ADMIN_URL, DatabaseFactory, pg_execute
from thoughts_service.main import MIGRATIONS_DIR as THOUGHTS_MIGRATIONS
from thoughts_service.models import Thought
from users_service.main import MIGRATIONS_DIR as USERS_MIGRATIONS
from users_service.settings import UsersSettings

# The users server's argon2 cost in the local system, so that imported hashes need no rehash.
USERS_SETTINGS = UsersSettings(
    argon2_time_cost=int(TEST_OVERRIDES["users"]["ARGON2_TIME_COST"]),
    argon2_memory_kib=int(TEST_OVERRIDES["users"]["ARGON2_MEMORY_KIB"]),
    argon2_parallelism=int(TEST_OVERRIDES["users"]["ARGON2_PARALLELISM"]),
)
BOOK_TIME = datetime(2019, 7, 1, 12, 30, 15)  # naive UTC, as the book stores it

# Plain-text passwords, as the book stores them; made up at test time, never real ones.
PASSWORDS = {1: f"bruce-{uuid.uuid4().hex[:8]}", 3: f"impostor-{uuid.uuid4().hex[:8]}"}


def legacy_users(backend: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"id": 1, "username": "bruce", "password": PASSWORDS[1], "creation": BOOK_TIME},
        {"id": 2, "username": "Mary O'Neil", "password": "mary", "creation": BOOK_TIME},
        {"id": 3, "username": "bruce", "password": PASSWORDS[3], "creation": BOOK_TIME},
        {"id": 4, "username": None, "password": "x", "creation": BOOK_TIME},
        {"id": 5, "username": " spaced", "password": "x", "creation": BOOK_TIME},
        {"id": 6, "username": "nopassword", "password": None, "creation": None},
        {"id": 40, "username": "stephen", "password": "stephen", "creation": BOOK_TIME},
        {"id": 42, "username": "Stephen", "password": "capital-s", "creation": BOOK_TIME},
    ]
    if backend == "sqlite":  # PostgreSQL's VARCHAR(50) could never hold it
        rows.append({"id": 41, "username": "u" * 51, "password": "x", "creation": BOOK_TIME})
    return rows


def legacy_thoughts(backend: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"id": 1, "username": "bruce", "text": "Hello from the book", "timestamp": BOOK_TIME},
        {"id": 2, "username": "stephen", "text": "Search finds ZyzzyvA here", "timestamp": None},
        {"id": 3, "username": "bruce", "text": "", "timestamp": BOOK_TIME},
        {"id": 4, "username": "bruce", "text": " \t ", "timestamp": BOOK_TIME},
        {"id": 5, "username": "bruce", "text": None, "timestamp": BOOK_TIME},
        {"id": 6, "username": "Mary O'Neil", "text": "  trimmed text  ", "timestamp": BOOK_TIME},
        {"id": 7, "username": None, "text": "nobody's", "timestamp": BOOK_TIME},
        {"id": 90, "username": "bruce", "text": "After a gap in the ids", "timestamp": BOOK_TIME},
    ]
    if backend == "sqlite":  # SQLite does not enforce VARCHAR(250)
        rows.append({"id": 8, "username": "bruce", "text": "x" * 251, "timestamp": BOOK_TIME})
    return rows


@dataclass
class Legacy:
    users_url: str
    thoughts_url: str


def _book_database(backend: str, root: Path, name: str) -> tuple[str, str]:
    """(URL as the book writes it, URL for a sync engine here) of a new empty database."""
    if backend == "sqlite":
        url = f"sqlite:///{root / f'{name}.db'}"
        return url, url
    database = f"mt_book_{name}_{uuid.uuid4().hex[:12]}"
    pg_execute(f'CREATE DATABASE "{database}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return (
        f"{base}/{database}",
        f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{database}",
    )


@pytest.fixture
def legacy(db_backend: str, tmp_path: Path) -> Iterator[Legacy]:
    """The book's two databases in its own schema, filled with awkward rows."""
    urls = {}
    created = []
    for name, table, rows in (
        ("users", user_model, legacy_users(db_backend)),
        ("thoughts", thought_model, legacy_thoughts(db_backend)),
    ):
        book_url, sync_url = _book_database(db_backend, tmp_path, name)
        engine = create_engine(sync_url)
        LEGACY_METADATA.create_all(engine, tables=[table])
        with engine.begin() as connection:
            connection.execute(insert(table), rows)
        engine.dispose()
        urls[name] = book_url
        created.append(book_url)
    yield Legacy(urls["users"], urls["thoughts"])
    if db_backend == "postgresql":
        for url in created:
            pg_execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@dataclass
class Targets:
    users_url: str
    thoughts_url: str


@pytest.fixture
def targets(database_factory: DatabaseFactory, db_backend: str) -> Targets:
    return Targets(
        database_factory.fresh(db_backend, USERS_MIGRATIONS),
        database_factory.fresh(db_backend, THOUGHTS_MIGRATIONS),
    )


def run_import(legacy: Legacy, targets: Targets, **options: Any) -> tuple[Any, list[str]]:
    said: list[str] = []
    report = asyncio.run(
        import_legacy(
            from_users=legacy.users_url,
            from_thoughts=legacy.thoughts_url,
            users_database_url=targets.users_url,
            thoughts_database_url=targets.thoughts_url,
            users_settings=USERS_SETTINGS,
            say=said.append,
            progress_bars=False,
            **options,
        )
    )
    return report, said


def test_import_then_use_through_the_services(
    legacy: Legacy, targets: Targets, db_backend: str, tmp_path: Path
) -> None:
    dry, dry_said = run_import(legacy, targets, dry_run=True)
    report, said = run_import(legacy, targets)
    again, again_said = run_import(legacy, targets)
    long_rows = 1 if db_backend == "sqlite" else 0

    # What the dry run announced is what the import did; nothing was written before it.
    for table in ("users", "thoughts"):
        planned, done = getattr(dry, table), getattr(report, table)
        assert (planned.imported, planned.already, planned.refused) == (
            done.imported,
            0,
            done.refused,
        )
    assert report.users.imported == 5  # bruce (id 1), Mary, nopassword, stephen, Stephen
    assert report.users.refused[DUPLICATE] == [3]
    assert report.users.refused_count == 3 + long_rows  # duplicate, no username, spaces(, long)
    assert report.thoughts.imported == 4  # 1, 2, 6, 90
    assert report.thoughts.refused[EMPTY_TEXT] == [3, 4, 5]
    assert report.thoughts.refused.get(LONG_TEXT, []) == [8] * long_rows
    assert report.thoughts.refused_count == 4 + long_rows  # empties, no username(, long)
    # The dry run and the import said which duplicate wins and why.
    for lines in (dry_said, said):
        assert "users: 'bruce' is repeated: id 1 wins, refused: id 3" in lines
        assert any("the lowest id wins: the book's login used it" in line for line in lines)

    # Run again: everything is found, nothing added.
    assert (again.users.imported, again.users.already) == (0, 5)
    assert (again.thoughts.imported, again.thoughts.already) == (0, 4)
    total = len(legacy_thoughts(db_backend))
    assert f"thoughts: {total:,} in the book's table; imported 0, already there 4" in "\n".join(
        again_said
    )

    assert "already there: 0 accounts and 0 thoughts in our databases" in said
    assert "already there: 5 accounts and 4 thoughts in our databases" in again_said

    # No plain-text password ever appears in what the command says.
    for password in PASSWORDS.values():
        assert password not in "\n".join(dry_said + said + again_said)

    overrides = {
        "users": {"DATABASE_URL": targets.users_url},
        "thoughts": {"DATABASE_URL": targets.thoughts_url},
    }
    with LocalSystem(tmp_path / "system", ("users", "thoughts"), overrides) as system:
        users, thoughts = system.url("users"), system.url("thoughts")
        # The old password logs in; the refused duplicate's password does not.
        token = system.login_token("bruce", PASSWORDS[1])
        impostor = httpx.post(
            f"{users}/api/login/", data={"username": "bruce", "password": PASSWORDS[3]}
        )
        assert impostor.status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        # Names that differ only in case are two accounts, each logging in by its exact name.
        for name, password in (("stephen", "stephen"), ("Stephen", "capital-s")):
            login = httpx.post(f"{users}/api/login/", data={"username": name, "password": password})
            assert login.status_code == 200, (name, login.text)

        mine = httpx.get(f"{thoughts}/api/me/thoughts/", headers=headers).json()
        assert [(t["id"], t["text"]) for t in mine] == [
            (1, "Hello from the book"),
            (90, "After a gap in the ids"),
        ]
        assert datetime.fromisoformat(mine[0]["timestamp"]) == BOOK_TIME.replace(tzinfo=UTC)

        found = httpx.get(f"{thoughts}/api/thoughts/", params={"search": "zyzzyva"}).json()
        assert [(t["id"], t["username"]) for t in found] == [(2, "stephen")]
        trimmed = httpx.get(f"{thoughts}/api/thoughts/", params={"search": "TRIMMED"}).json()
        assert [(t["id"], t["text"]) for t in trimmed] == [(6, "trimmed text")]

        # New rows get ids past the imported ones (sequences advanced).
        posted = httpx.post(f"{thoughts}/api/me/thoughts/", json={"text": "new"}, headers=headers)
        assert posted.status_code == 201, posted.text
        assert posted.json()["id"] > 90
        created = httpx.post(
            f"{users}/admin/users/", json={"username": "newcomer", "password": "newcomer-pw"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["id"] > 40
        # The account without a password in the book exists, and nobody can log in to it.
        assert (
            httpx.post(
                f"{users}/admin/users/", json={"username": "nopassword", "password": "x"}
            ).status_code
            == 409
        )


def test_refuses_rows_our_database_holds_differently(
    legacy: Legacy, targets: Targets, db_backend: str
) -> None:
    """A thought id taken by another row is refused and reported, never overwritten."""
    from sqlalchemy.ext.asyncio import create_async_engine

    async def occupy() -> None:
        engine = create_async_engine(targets.thoughts_url)
        async with engine.begin() as connection:
            await connection.execute(
                insert(Thought),
                [{"id": 90, "username": "someone", "text": "posted here first"}],
            )
        await engine.dispose()

    asyncio.run(occupy())
    report, _ = run_import(legacy, targets)
    assert report.thoughts.refused[TAKEN_ID] == [90]
    assert report.thoughts.imported == 3


def test_refuses_an_unmigrated_target(legacy: Legacy, database_factory: DatabaseFactory) -> None:
    empty = Targets(database_factory.empty("sqlite"), database_factory.empty("sqlite"))
    with pytest.raises(NotMigrated, match="run `python -m users_service migrate`"):
        run_import(legacy, empty)


def test_a_run_cut_short_is_completed_by_the_next(legacy: Legacy, targets: Targets) -> None:
    """Resumable: what a run committed is found, what it had not reached is added."""
    from sqlalchemy import delete
    from sqlalchemy.ext.asyncio import create_async_engine

    run_import(legacy, targets)

    async def forget_the_last_batch() -> None:  # as if the run had stopped before it
        engine = create_async_engine(targets.thoughts_url)
        async with engine.begin() as connection:
            await connection.execute(delete(Thought).where(Thought.id >= 6))
        await engine.dispose()

    asyncio.run(forget_the_last_batch())
    report, _ = run_import(legacy, targets)
    assert (report.thoughts.imported, report.thoughts.already) == (2, 2)
