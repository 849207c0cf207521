"""The operator's commands (`python -m users_service ...`), run as the operator runs them: a real
process on a real database, judged by exit code and what it prints."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from servicekit.migrations import head_revision
from testkit import python_module_argv
from users_service.main import MIGRATIONS_DIR


def users_command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'users.db'}",
        "JWT_KEYS_DIR": str(tmp_path / "keys"),
        "USER_PASSWORD": "correct horse battery",
        # The cheapest argon2id the settings allow: the command is tested, not the hash.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "8",
    }
    return subprocess.run(
        python_module_argv("users_service", *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_create_user_on_an_unmigrated_database_says_to_migrate_first(tmp_path: Path) -> None:
    refused = users_command(tmp_path, "create-user", "bruce")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"the users database is at migration none, not {head_revision(MIGRATIONS_DIR)}: "
        "run `python -m users_service migrate` first"
    )  # one line, no traceback

    assert users_command(tmp_path, "migrate").returncode == 0
    created = users_command(tmp_path, "create-user", "bruce")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created user 'bruce' with id ")
    again = users_command(tmp_path, "create-user", "bruce")
    assert (again.returncode, again.stdout.strip()) == (1, "user 'bruce' already exists")
    assert users_command(tmp_path, "create-user", "--if-missing", "bruce").returncode == 0
