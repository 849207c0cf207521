"""`python -m devtools import-legacy`: copy the book's users and thoughts into our databases.

Reads the book's `user_model` and `thought_model` (devtools.legacy_schema) in id order, a batch
at a time, and writes each batch into our users and thoughts databases (already migrated to
head) in a transaction of its own, so that memory stays bounded and an interrupted run keeps what
it committed. What is kept and what changes on the way:

- ids, usernames, creation times and timestamps are kept (the book's naive times are UTC);
- plain-text passwords are hashed with argon2id by the users service's own hasher at the cost
  the server runs with (ARGON2_* of the environment), so that a login verifies without
  rehashing; a password is never printed, and the book's engine hides row values from errors;
- a text is trimmed as the thoughts service trims a posted one, and its search key computed as
  the service computes it (thoughts_service.search): the FTS5 triggers (SQLite) and the pg_trgm
  GIN index by id window (PostgreSQL) index every row as it lands;
- afterwards the PostgreSQL sequences are moved past the highest id (SQLite's AUTOINCREMENT and
  rowid follow explicit ids by themselves), so that new accounts and thoughts never collide.

Refused, with the reason and the ids in the report: a username our table cannot hold or nobody
could type (empty, over 50 characters, control characters, surrounding spaces), a username
repeated exactly in the book's table (the lowest id wins, see `DUPLICATE`), an empty text, a
text over 250 characters, and any row whose id or username our database already holds for a
different row. Names that differ only in case (`stephen`, `Stephen`) are both kept, as
migration 0002 kept such rows: the oldest takes the unique case-folded key, the others log in by
their exact name. A user whose
password is NULL (the book could never log them in) is imported with an unusable password, so
that nobody else can take the name that owns their thoughts.

Run twice, it finds every row already there (same id, same username, same text) and says so;
`--dry-run` reads and checks everything and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Row, insert, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from devtools import legacy_schema
from devtools.legacy_schema import thought_model, user_model
from devtools.synthetic_thoughts import trigram_index_bulk_mode
from servicekit.db import Database, DatabaseOptions
from servicekit.migrations import NotMigrated, require_head
from thoughts_service.main import MIGRATIONS_DIR as THOUGHTS_MIGRATIONS
from thoughts_service.models import TEXT_MAX, Thought
from thoughts_service.schemas import WHITESPACE, ThoughtText
from thoughts_service.search import search_key
from users_service.main import MIGRATIONS_DIR as USERS_MIGRATIONS
from users_service.models import User
from users_service.passwords import Passwords
from users_service.schemas import USERNAME_PATTERN
from users_service.settings import UsersSettings
from users_service.usernames import lookup_key

BATCH = 1000
USERNAME_MAX = 50  # users.username and thoughts.username
EXAMPLES = 10  # ids shown per reason; the count is always complete

# Why the lowest id: the book's login reads `UserModel.query.filter(username == ...).first()`,
# with no ORDER BY, which returns the first row in table order. The book never updates a user
# row, so that is the oldest one, the lowest id on SQLite (rowid order) and PostgreSQL (heap
# order) alike: its password is the only one that ever logged in under that name.
DUPLICATE = "username repeated in the book's table (the lowest id wins: the book's login used it)"
TAKEN_ID = "the id is taken in our database by another row"
TAKEN_USERNAME = "the username exists in our database with another id"
EMPTY_TEXT = "empty text"
LONG_TEXT = f"text over {TEXT_MAX} characters"

_text = TypeAdapter(ThoughtText)


@dataclass
class TableReport:
    """What happened (or, in a dry run, would happen) to the rows of one of the book's tables."""

    name: str
    total: int = 0
    imported: int = 0
    already: int = 0
    refused: dict[str, list[int]] = field(default_factory=dict)  # reason -> ids
    notes: dict[str, int] = field(default_factory=dict)  # imported, but changed on the way

    def refuse(self, reason: str, row_id: int) -> None:
        self.refused.setdefault(reason, []).append(row_id)

    def note(self, what: str) -> None:
        self.notes[what] = self.notes.get(what, 0) + 1

    @property
    def refused_count(self) -> int:
        return sum(len(ids) for ids in self.refused.values())

    def lines(self, *, dry_run: bool) -> list[str]:
        verb = "would import" if dry_run else "imported"
        lines = [
            f"{self.name}: {self.total:,} in the book's table; {verb} {self.imported:,}, "
            f"already there {self.already:,}, refused {self.refused_count:,}"
        ]
        for reason, ids in self.refused.items():
            shown = ", ".join(str(row_id) for row_id in ids[:EXAMPLES])
            more = f" and {len(ids) - EXAMPLES:,} more" if len(ids) > EXAMPLES else ""
            lines.append(f"  refused, {reason}: {len(ids):,} (ids {shown}{more})")
        for what, count in self.notes.items():
            lines.append(f"  {what}: {count:,}")
        return lines


@dataclass
class ImportReport:
    users: TableReport
    thoughts: TableReport
    seconds: float = 0.0


def _utc(value: datetime | None, report: TableReport, now: datetime) -> datetime:
    if value is None:
        report.note("no time in the book's row: set to the time of the import")
        return now
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def username_problem(username: str | None) -> str | None:
    """Why a book's username cannot be stored here, or None. The rules of an existing account,
    not of a new one: our table holds 50 characters, and no name may have control characters or
    surrounding spaces (a login could never type it). A name that the stricter rules of new
    accounts refuse (PRECIS, look-alikes) is kept, as migration 0002 kept such rows."""
    if username is None or not username.strip():
        return "no username"
    if len(username) > USERNAME_MAX:
        return f"a username over {USERNAME_MAX} characters"
    if not re.fullmatch(USERNAME_PATTERN, username):
        return "a username with control characters"
    if username != username.strip():
        return "a username with surrounding spaces"
    return None


def text_problem(value: str | None) -> tuple[str | None, str | None]:
    """(the text as the thoughts service stores it, None) or (None, why it is refused)."""
    if value is None or not value.strip(WHITESPACE):
        return None, EMPTY_TEXT
    if len(value.strip(WHITESPACE)) > TEXT_MAX:
        return None, LONG_TEXT
    try:
        return _text.validate_python(value), None
    except ValidationError as exc:
        return None, f"a text the thoughts service refuses ({exc.errors()[0]['msg'].lower()})"


class _Hasher:
    """The users service's argon2id hasher, several passwords at once (one per core: argon2
    releases the GIL, and each hash holds ARGON2_MEMORY_KIB only while it runs)."""

    def __init__(self, settings: UsersSettings) -> None:
        self._hasher = Passwords(settings).hasher
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)

    async def hash_all(self, passwords: Sequence[str]) -> list[str]:
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(self._pool, self._hasher.hash, p) for p in passwords]
        return list(await asyncio.gather(*futures))

    def close(self) -> None:
        self._pool.shutdown()


def _key_of(key: str | None, taken: set[str], report: TableReport) -> str | None:
    """The unique case-folded key (users_service.usernames), given as migration 0002 gave it to
    existing rows: the oldest account of a name takes it; a later one whose name folds to the
    same key (`Stephen` after `stephen`), or a name without a key, keeps a NULL key and logs in
    by its exact name, as in the book."""
    if key is None:
        report.note("a name without a case-folded key (PRECIS): logs in by its exact name")
        return None
    if key in taken:
        report.note("the case-folded name of an older account: logs in by its exact name")
        return None
    taken.add(key)
    return key


async def _insert_rows(
    connection: AsyncConnection,
    table: type[User] | type[Thought],
    rows: list[dict[str, Any]],
    report: TableReport,
) -> None:
    """One batch in one transaction; if the database refuses it (a constraint a check above did
    not foresee), row by row, so that only the offending rows are refused."""
    try:
        async with connection.begin():
            await connection.execute(insert(table), rows)
        report.imported += len(rows)
        return
    except IntegrityError:
        pass
    for row in rows:
        try:
            async with connection.begin():
                await connection.execute(insert(table), [row])
            report.imported += 1
        except IntegrityError as exc:
            reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            report.refuse(f"refused by our database ({reason})", row["id"])


async def _import_users(
    source: AsyncEngine,
    target: AsyncEngine,
    *,
    dry_run: bool,
    hasher: _Hasher | None,
    progress: Callable[[int], None],
    say: Callable[[str], None],
) -> TableReport:
    report = TableReport("users", total=await legacy_schema.count_rows(source, user_model))
    repeated = await legacy_schema.repeated_usernames(source)
    for username, ids in list(repeated.items())[:EXAMPLES]:
        losers = ", ".join(str(row_id) for row_id in ids[1:])
        say(f"users: {username!r} is repeated: id {ids[0]} wins, refused: id {losers}")
    if len(repeated) > EXAMPLES:
        say(f"users: and {len(repeated) - EXAMPLES:,} more repeated usernames")
    winners = {username: ids[0] for username, ids in repeated.items()}
    taken_keys: set[str] = set()  # case-folded keys held in our table or given in this run
    now = datetime.now(UTC)
    async with target.connect() as connection:
        async for batch in legacy_schema.batches(source, user_model, BATCH):
            candidates: list[Row[Any]] = []
            for row in batch:
                problem = username_problem(row.username)
                if problem is None and winners.get(row.username, row.id) != row.id:
                    problem = DUPLICATE
                if problem is not None:
                    report.refuse(problem, row.id)
                else:
                    candidates.append(row)
            keys = {row.id: lookup_key(row.username) for row in candidates}
            present = await connection.execute(
                select(User.id, User.username, User.username_key).where(
                    or_(
                        User.id.in_([row.id for row in candidates]),
                        User.username.in_([row.username for row in candidates]),
                        User.username_key.in_([key for key in keys.values() if key]),
                    )
                )
            )
            await connection.rollback()
            by_id = {}
            by_name = {}
            for row_id, username, key in present:
                by_id[row_id] = username
                by_name[username] = row_id
                if key is not None:
                    taken_keys.add(key)
            new: list[Row[Any]] = []
            for row in candidates:
                if by_id.get(row.id) == row.username:
                    report.already += 1
                elif row.id in by_id:
                    report.refuse(TAKEN_ID, row.id)
                elif row.username in by_name:
                    report.refuse(TAKEN_USERNAME, row.id)
                else:
                    new.append(row)
            rows = []
            for row in new:
                rows.append(
                    {
                        "id": row.id,
                        "username": row.username,
                        "username_key": _key_of(keys[row.id], taken_keys, report),
                        "creation": _utc(row.creation, report, now),
                    }
                )
            for row in new:
                if row.password is None:
                    report.note("no password in the book (it could never log in): locked")
            if dry_run or hasher is None:
                report.imported += len(rows)
            elif rows:
                # A NULL password gets a random one nobody knows: the account exists, as in the
                # book, and nobody can log in to it, as in the book.
                hashes = await hasher.hash_all(
                    [
                        row.password if row.password is not None else secrets.token_urlsafe(32)
                        for row in new
                    ]
                )
                for values, password_hash in zip(rows, hashes, strict=True):
                    values["password_hash"] = password_hash
                await _insert_rows(connection, User, rows, report)
            progress(len(batch))
    return report


async def _import_thoughts(
    source: AsyncEngine,
    target: AsyncEngine,
    *,
    dry_run: bool,
    progress: Callable[[int], None],
) -> TableReport:
    report = TableReport("thoughts", total=await legacy_schema.count_rows(source, thought_model))
    now = datetime.now(UTC)
    async with target.connect() as connection:
        # PostgreSQL: a large pending list for the trigram index while rows pour in, merged and
        # put back to its own options at the end (a run cut short leaves the large list; the
        # next run, or any run of `devtools load`, puts it back).
        async with trigram_index_bulk_mode(connection) if not dry_run else _nothing():
            await connection.commit()
            async for batch in legacy_schema.batches(source, thought_model, BATCH):
                candidates: list[tuple[Row[Any], str]] = []
                for row in batch:
                    problem = username_problem(row.username)
                    stored_text, text_refusal = text_problem(row.text)
                    problem = problem or text_refusal
                    if problem is not None or stored_text is None:
                        report.refuse(problem or EMPTY_TEXT, row.id)
                    else:
                        if stored_text != row.text:
                            report.note("text trimmed of surrounding whitespace")
                        candidates.append((row, stored_text))
                present = {
                    row_id: (username, text_)
                    for row_id, username, text_ in await connection.execute(
                        select(Thought.id, Thought.username, Thought.text).where(
                            Thought.id.in_([row.id for row, _ in candidates])
                        )
                    )
                }
                await connection.rollback()
                rows = []
                for row, stored_text in candidates:
                    if present.get(row.id) == (row.username, stored_text):
                        report.already += 1
                    elif row.id in present:
                        report.refuse(TAKEN_ID, row.id)
                    else:
                        rows.append(
                            {
                                "id": row.id,
                                "username": row.username,
                                "text": stored_text,
                                "search_text": search_key(stored_text),
                                "timestamp": _utc(row.timestamp, report, now),
                            }
                        )
                if dry_run:
                    report.imported += len(rows)
                elif rows:
                    await _insert_rows(connection, Thought, rows, report)
                progress(len(batch))
        await connection.commit()
    return report


class _nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_exc: object) -> None:
        return None


# Moves a PostgreSQL sequence past the table's highest id, never backwards.
_ADVANCE_SEQUENCE = """
SELECT setval(sequence, top)
FROM (SELECT pg_get_serial_sequence(:table, 'id') AS sequence,
             (SELECT max(id) FROM {table}) AS top) AS s
WHERE top IS NOT NULL AND top > COALESCE(pg_sequence_last_value(sequence::regclass), 0)
"""


async def advance_sequence(engine: AsyncEngine, table: str) -> None:
    if engine.dialect.name != "postgresql":
        return  # SQLite: AUTOINCREMENT and rowids follow explicit ids by themselves
    async with engine.begin() as connection:
        await connection.execute(text(_ADVANCE_SEQUENCE.format(table=table)), {"table": table})


async def import_legacy(
    *,
    from_users: str,
    from_thoughts: str,
    users_database_url: str,
    thoughts_database_url: str,
    dry_run: bool = False,
    users_settings: UsersSettings | None = None,
    say: Callable[[str], None] = print,
    progress_bars: bool = True,
) -> ImportReport:
    start = time.perf_counter()
    legacy_users = legacy_schema.legacy_engine(from_users)
    legacy_thoughts = legacy_schema.legacy_engine(from_thoughts)
    users_db = Database(users_database_url, DatabaseOptions(pool_size=1))
    thoughts_db = Database(thoughts_database_url, DatabaseOptions(pool_size=1))
    hasher = None if dry_run else _Hasher(users_settings or UsersSettings())
    try:
        await require_head(users_db.engine, USERS_MIGRATIONS, "users")
        await require_head(thoughts_db.engine, THOUGHTS_MIGRATIONS, "thoughts")
        mode = "dry run: nothing is written" if dry_run else "importing"
        shown = legacy_schema.shown
        say(
            f"{mode}: {shown(from_users)} -> {shown(users_database_url)}, "
            f"{shown(from_thoughts)} -> {shown(thoughts_database_url)}"
        )
        accounts = await legacy_schema.count_rows(users_db.engine, User.__table__)
        posted = await legacy_schema.count_rows(thoughts_db.engine, Thought.__table__)
        say(f"already there: {accounts:,} accounts and {posted:,} thoughts in our databases")
        with _bar(
            progress_bars, "users", await legacy_schema.count_rows(legacy_users, user_model)
        ) as bar:
            users = await _import_users(
                legacy_users,
                users_db.engine,
                dry_run=dry_run,
                hasher=hasher,
                progress=bar.update,
                say=say,
            )
        say("\n".join(users.lines(dry_run=dry_run)))
        with _bar(
            progress_bars,
            "thoughts",
            await legacy_schema.count_rows(legacy_thoughts, thought_model),
        ) as bar:
            thoughts = await _import_thoughts(
                legacy_thoughts, thoughts_db.engine, dry_run=dry_run, progress=bar.update
            )
        say("\n".join(thoughts.lines(dry_run=dry_run)))
        if not dry_run:
            await advance_sequence(users_db.engine, "users")
            await advance_sequence(thoughts_db.engine, "thoughts")
    finally:
        if hasher is not None:
            hasher.close()
        for engine in (legacy_users, legacy_thoughts):
            await engine.dispose()
        await users_db.dispose()
        await thoughts_db.dispose()
    report = ImportReport(users, thoughts, time.perf_counter() - start)
    say(f"import-legacy: {'checked' if dry_run else 'done'} in {report.seconds:.1f}s")
    return report


class _NoBar:
    def update(self, _n: int) -> None:
        return None

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None


def _bar(enabled: bool, name: str, total: int) -> Any:
    if not enabled:
        return _NoBar()
    # Imported here: tqdm is a development tool, not a dependency of the services' images.
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit=" rows", unit_scale=True, file=sys.stderr, leave=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from-users", required=True, metavar="URL", help="the book's users database (user_model)"
    )
    parser.add_argument(
        "--from-thoughts",
        required=True,
        metavar="URL",
        help="the book's thoughts database (thought_model)",
    )
    parser.add_argument(
        "--users-database-url", required=True, metavar="URL", help="our users database, at head"
    )
    parser.add_argument(
        "--thoughts-database-url",
        required=True,
        metavar="URL",
        help="our thoughts database, at head",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check and report everything, write nothing"
    )


def main(args: argparse.Namespace) -> int:
    try:
        asyncio.run(
            import_legacy(
                from_users=args.from_users,
                from_thoughts=args.from_thoughts,
                users_database_url=args.users_database_url,
                thoughts_database_url=args.thoughts_database_url,
                dry_run=args.dry_run,
            )
        )
    except (NotMigrated, ValueError) as exc:
        print(f"import-legacy: {exc}", file=sys.stderr)
        return 2
    return 0
