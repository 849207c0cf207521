"""`python -m devtools load`: fill the service databases with a realistic amount of data.

Thoughts come from the generator and bulk loader of `devtools.synthetic_thoughts` (PostgreSQL
COPY, batched inserts on SQLite, progress bar); their authors get accounts in the users database
(`devtools.synthetic_users`), all with one password, so
that a benchmark can log in as any of them. Both databases are migrated first. Safe to run again:
it says what is already there and adds only what is missing.

The loader writes into the databases directly, like a migration, not through the APIs: a million
thoughts through HTTP would take as long as the benchmark it prepares. It is a development tool;
no service ever reads another's database.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devtools.synthetic_thoughts import LoadResult, add_load_arguments, load_with_progress
from devtools.synthetic_thoughts import synthetic_authors as authors_of
from devtools.synthetic_users import UsersLoadResult, load_users, shared_password_hash
from servicekit.migrations import upgrade
from thoughts_service.main import MIGRATIONS_DIR as THOUGHTS_MIGRATIONS
from users_service.main import MIGRATIONS_DIR as USERS_MIGRATIONS
from users_service.settings import UsersSettings

# The one password of every generated account (local benchmarks only).
DEFAULT_PASSWORD = "bench-password"  # noqa: S105


@dataclass(frozen=True)
class LoadSummary:
    thoughts: LoadResult
    users: UsersLoadResult
    seconds: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_load_arguments(parser)
    parser.add_argument(
        "--password",
        default=DEFAULT_PASSWORD,
        help=f"password of every generated account (default: {DEFAULT_PASSWORD!r})",
    )
    parser.add_argument(
        "--thoughts-database-url",
        help="the thoughts database (default: the SQLite file of `devtools run` in --var-dir)",
    )
    parser.add_argument(
        "--users-database-url",
        help="the users database (default: the SQLite file of `devtools run` in --var-dir)",
    )


def load(
    *,
    thoughts_database_url: str,
    users_database_url: str,
    count: int,
    authors: int = 1000,
    password: str = DEFAULT_PASSWORD,
    seed: int = 1,
    rare_word: str | None = None,
    rare_every: int | None = None,
    users_settings: UsersSettings | None = None,
    say: Callable[[str], None] = print,
) -> LoadSummary:
    start = time.perf_counter()
    for migrations, url in (
        (USERS_MIGRATIONS, users_database_url),
        (THOUGHTS_MIGRATIONS, thoughts_database_url),
    ):
        upgrade(migrations, url)

    usernames = authors_of(authors)
    # The argon2 cost the users server runs with (ARGON2_* of the environment), so that a login
    # verifies the shared hash without rehashing it.
    password_hash = shared_password_hash(password, users_settings or UsersSettings())
    users = asyncio.run(load_users(users_database_url, usernames, password_hash))
    say(
        f"users: {users.existing:,} of {len(usernames):,} authors already had an account; "
        f"created {users.inserted:,} (password {password!r})"
    )

    options: dict[str, object] = {"seed": seed, "authors": authors}
    if rare_word is not None:
        options["rare_word"] = rare_word
    if rare_every is not None:
        options["rare_every"] = rare_every
    thoughts = load_with_progress(thoughts_database_url, count, say=say, **options)
    seconds = time.perf_counter() - start
    say(f"load: done in {seconds:.1f}s")
    return LoadSummary(thoughts, users, seconds)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def main(args: argparse.Namespace, var_dir: Path) -> int:
    load(
        thoughts_database_url=args.thoughts_database_url or sqlite_url(var_dir / "thoughts.db"),
        users_database_url=args.users_database_url or sqlite_url(var_dir / "users.db"),
        count=args.count,
        authors=args.authors,
        password=args.password,
        seed=args.seed,
        rare_word=args.rare_word,
        rare_every=args.rare_every,
    )
    return 0
