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

from tasks_service import __version__
from tasks_service.main import MIGRATIONS_DIR, create_app
from tasks_service.settings import TasksSettings
from testkit.release_statements import ReleaseRecordings, Statement, record_workload

RELEASE = ReleaseRecordings(
    Path(__file__).parent / "release_statements", MIGRATIONS_DIR, __version__
)


async def workload(
    database_url: str, public_keys_dir: Path, auth: Callable[[str], dict[str, str]]
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

    settings = TasksSettings(database_url=database_url, auth_public_keys_dir=public_keys_dir)
    return await record_workload(create_app(settings), steps)


if os.environ.get("RECORD_RELEASE_STATEMENTS"):

    async def test_record_release_statements(
        database_url: str,
        public_keys_dir: Path,
        auth: Callable[[str], dict[str, str]],
        db_backend: str,
    ) -> None:
        RELEASE.save(db_backend, await workload(database_url, public_keys_dir, auth))


async def test_previous_release_statements_run_on_this_schema(
    database_url: str, db_backend: str
) -> None:
    await RELEASE.check(db_backend, database_url, at_least=8)


@pytest.mark.parametrize(
    ("change", "breaks_on"),
    [
        ("ALTER TABLE tasks RENAME TO todo_items", "tasks"),
        ("ALTER TABLE tasks ADD COLUMN done BOOLEAN", None),
    ],
)
async def test_a_contracting_change_fails_the_replay(
    database_url: str, db_backend: str, change: str, breaks_on: str | None
) -> None:
    """The check can fail: a renamed table (contract) breaks the previous release; a column that
    may be NULL (expand) does not."""
    await RELEASE.check_change(db_backend, database_url, [change], breaks_on=breaks_on)
