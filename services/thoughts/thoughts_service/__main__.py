"""Command line of the thoughts service.

python -m thoughts_service serve                        # the server (same command in images)
python -m thoughts_service migrate                      # run Alembic migrations to head
python -m thoughts_service load-synthetic --count N     # up to N generated thoughts (benchmarks)
"""

from __future__ import annotations

import argparse
import sys

from servicekit.migrations import upgrade
from servicekit.server import serve_settings
from servicekit.settings import load_settings
from thoughts_service.loader import add_load_arguments, load_with_progress
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
    add_load_arguments(load)
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
        load_with_progress(
            database_url,
            args.count,
            seed=args.seed,
            authors=args.authors,
            rare_word=args.rare_word,
            rare_every=args.rare_every,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
