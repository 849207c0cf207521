"""Command line of the users service.

python -m users_service serve                 # the server (same command in images)
python -m users_service migrate               # run Alembic migrations to head
python -m users_service keys generate [--kid K]
python -m users_service create-user NAME      # password from USER_PASSWORD or a prompt
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from servicekit.db import Database
from servicekit.migrations import NotMigrated, require_head, upgrade
from servicekit.server import serve_settings
from servicekit.settings import load_settings
from users_service.accounts import UsernameTaken, create_user
from users_service.main import MIGRATIONS_DIR
from users_service.passwords import Passwords
from users_service.settings import UsersSettings
from users_service.signing import generate_key
from users_service.usernames import InvalidUsername


async def _create_user(settings: UsersSettings, username: str, password: str) -> None:
    database = Database(settings.database_url)
    try:
        await require_head(database.engine, MIGRATIONS_DIR, "users")
        async with database.sessionmaker() as session:
            user = await create_user(session, Passwords(settings), username, password)
            print(f"created user {user.username!r} with id {user.id}")
    finally:
        await database.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m users_service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server")
    commands.add_parser("migrate", help="migrate the database to the newest revision")
    keys = commands.add_parser("keys", help="manage signing keys")
    keys.add_argument("action", choices=["generate"])
    keys.add_argument("--kid", help="key id (default: date and random suffix)")
    keys.add_argument("--if-none", action="store_true", help="only when no private key exists")
    create = commands.add_parser("create-user", help="create a user")
    create.add_argument("username")
    create.add_argument("--if-missing", action="store_true", help="succeed if it exists")
    args = parser.parse_args(argv)

    settings = load_settings(UsersSettings)
    if args.command == "serve":
        serve_settings("users_service.main:create_app", settings)
    elif args.command == "migrate":
        upgrade(MIGRATIONS_DIR, settings.database_url)
        print(f"users database migrated: {settings.database_url.split('@')[-1]}")
    elif args.command == "keys":
        existing = list(settings.jwt_keys_dir.glob("*.key.pem"))
        if args.if_none and existing:
            print(f"signing key present in {settings.jwt_keys_dir}; nothing to do")
            return 0
        kid = generate_key(settings.jwt_keys_dir, args.kid)
        print(f"generated key {kid} in {settings.jwt_keys_dir}")
    elif args.command == "create-user":
        password = os.environ.get("USER_PASSWORD") or getpass.getpass(
            f"password for {args.username}: "
        )
        try:
            asyncio.run(_create_user(settings, args.username, password))
        except UsernameTaken:
            print(f"user {args.username!r} already exists")
            return 0 if args.if_missing else 1
        except InvalidUsername as exc:
            print(f"refusing {args.username!r}: {exc}", file=sys.stderr)
            return 2
        except NotMigrated as exc:
            print(exc, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
