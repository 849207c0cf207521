"""Command line of the thoughts service.

python -m thoughts_service serve      # the server (same command in images)
python -m thoughts_service migrate    # run Alembic migrations to head

Generated data for benchmarks is a development tool: `python -m devtools load --thoughts N`.
"""

from __future__ import annotations

import argparse
import sys

from servicekit.migrations import upgrade
from servicekit.server import serve_settings
from servicekit.settings import load_settings
from thoughts_service.main import MIGRATIONS_DIR
from thoughts_service.settings import ThoughtsDatabaseSettings, ThoughtsSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thoughts_service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server")
    commands.add_parser("migrate", help="migrate the database to the newest revision")
    args = parser.parse_args(argv)

    if args.command == "serve":
        settings = load_settings(ThoughtsSettings)
        serve_settings("thoughts_service.main:create_app", settings)
        return 0
    # migrate runs as its own step (CLI, Job) without token keys.
    database_url = load_settings(ThoughtsDatabaseSettings).database_url
    upgrade(MIGRATIONS_DIR, database_url)
    print(f"thoughts database migrated: {database_url.split('@')[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
