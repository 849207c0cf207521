"""Expand/contract: the SQL the previous release of the tasks service sent still runs on a
database migrated to this head (testkit.release_statements, docs/migrations.md).

`release_statements/<dialect>.json` holds what the release sent while it served the workload
below. To record the current release:

    RECORD_RELEASE_STATEMENTS=1 .venv/bin/pytest -n 0 -p no:randomly \\
        services/tasks/tests/test_expand_contract.py -k record
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from servicekit.migrations import head_revision, known_revisions
from tasks_service import __version__
from tasks_service.main import MIGRATIONS_DIR, create_app
from tasks_service.settings import TasksSettings
from testkit.release_statements import (
    ReplayFailed,
    Statement,
    check_recording,
    execute_ddl,
    load,
    record_workload,
    replay,
    save,
)

RECORDINGS = Path(__file__).parent / "release_statements"


async def workload(
    database_url: str, keys_dir: Path, auth: Callable[[str], dict[str, str]]
) -> list[Statement]:
    """Every route of the tutorial's contract, on the shared list and on a user's own."""

    async def steps(client: httpx.AsyncClient) -> None:
        for headers in ({}, auth("bruce")):
            created = await client.post("/task", json={"task": "Learn"}, headers=headers)
            assert created.status_code == 200, created.text
            tasks = (await client.get("/tasks", headers=headers)).json()["data"]
            task_id = tasks[0]["id"]
            renamed = await client.put(f"/task/{task_id}", json={"task": "More"}, headers=headers)
            assert renamed.status_code == 200
            assert (await client.get("/tasks", params={"limit": 1}, headers=headers)).is_success
            assert (await client.delete(f"/task/{task_id}", headers=headers)).status_code == 200
            await client.post("/task", json={"task": "Again"}, headers=headers)
            assert (await client.post("/tasks/delete", headers=headers)).status_code == 200

    settings = TasksSettings(database_url=database_url, auth_public_keys_dir=keys_dir)
    return await record_workload(create_app(settings), steps)


if os.environ.get("RECORD_RELEASE_STATEMENTS"):

    async def test_record_release_statements(
        database_url: str, keys_dir: Path, auth: Callable[[str], dict[str, str]], db_backend: str
    ) -> None:
        save(
            RECORDINGS / f"{db_backend}.json",
            await workload(database_url, keys_dir, auth),
            release=__version__,
            dialect=db_backend,
            migration_head=head_revision(MIGRATIONS_DIR),
        )


async def test_previous_release_statements_run_on_this_schema(
    database_url: str, db_backend: str
) -> None:
    path = RECORDINGS / f"{db_backend}.json"
    recording = await check_recording(path, database_url, known_revisions(MIGRATIONS_DIR))
    assert len(recording.statements) >= 8


@pytest.mark.parametrize(
    ("change", "breaks"),
    [
        ("ALTER TABLE tasks RENAME TO todo_items", True),
        ("ALTER TABLE tasks ADD COLUMN done BOOLEAN", False),
    ],
)
async def test_a_contracting_change_fails_the_replay(
    database_url: str, db_backend: str, change: str, breaks: bool
) -> None:
    """The check can fail: a renamed table (contract) breaks the previous release; a column
    that may be NULL (expand) does not."""
    await execute_ddl(database_url, change)
    statements = load(RECORDINGS / f"{db_backend}.json").statements
    if breaks:
        with pytest.raises(ReplayFailed, match="tasks"):
            await replay(database_url, statements)
    else:
        assert await replay(database_url, statements) == len(statements)
