"""Command line of the tasks service.

python -m tasks_service serve      # the server (same command in images)
python -m tasks_service migrate    # run Alembic migrations to head
"""

from __future__ import annotations

import argparse
import sys

from servicekit.migrations import upgrade
from servicekit.server import serve_settings
from servicekit.settings import load_settings
from tasks_service.main import MIGRATIONS_DIR
from tasks_service.settings import TasksDatabaseSettings, TasksSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks_service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server")
    commands.add_parser("migrate", help="migrate the database to the newest revision")
    args = parser.parse_args(argv)

    if args.command == "serve":
        settings = load_settings(TasksSettings)
        serve_settings("tasks_service.main:create_app", settings)
        return 0
    # Its own step (CLI, compose job, Kubernetes Job), without token settings.
    database_url = load_settings(TasksDatabaseSettings).database_url
    upgrade(MIGRATIONS_DIR, database_url)
    print(f"tasks database migrated: {database_url.split('@')[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
