"""Command line of the thoughts service.

python -m thoughts_service serve                        # the server (same command in images)
python -m thoughts_service migrate                      # run Alembic migrations to head
python -m thoughts_service load-synthetic --count N     # N generated thoughts, for benchmarks
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from servicekit.migrations import upgrade
from servicekit.server import serve_settings
from servicekit.settings import load_settings
from thoughts_service.loader import load_synthetic
from thoughts_service.main import MIGRATIONS_DIR
from thoughts_service.settings import ThoughtsDatabaseSettings, ThoughtsSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thoughts_service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server")
    commands.add_parser("migrate", help="migrate the database to the newest revision")
    load = commands.add_parser(
        "load-synthetic", help="insert generated thoughts (for benchmarks; not for production)"
    )
    load.add_argument("--count", type=int, required=True)
    load.add_argument("--seed", type=int, default=1)
    load.add_argument(
        "--rare-word",
        default="zyzzyva",
        help="a word put into one thought in every --rare-every (default: 'zyzzyva')",
    )
    load.add_argument("--rare-every", type=int, default=10_000)
    args = parser.parse_args(argv)

    if args.command == "serve":
        settings = load_settings(ThoughtsSettings)
        serve_settings("thoughts_service.main:create_app", settings)
        return 0
    # Database-only commands: they run as their own step (CLI, Job) without token keys.
    database_url = load_settings(ThoughtsDatabaseSettings).database_url
    if args.command == "migrate":
        upgrade(MIGRATIONS_DIR, database_url)
        print(f"thoughts database migrated: {database_url.split('@')[-1]}")
    elif args.command == "load-synthetic":
        start = time.perf_counter()
        inserted = asyncio.run(
            load_synthetic(
                database_url,
                args.count,
                seed=args.seed,
                rare_word=args.rare_word,
                rare_every=args.rare_every,
            )
        )
        print(f"inserted {inserted} thoughts in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
