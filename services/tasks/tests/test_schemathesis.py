"""Generated requests against every operation of the tasks OpenAPI schema, in process: no
server errors, every response as the schema documents it, forbidden input refused with a 4xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks_service.main import create_app
from tasks_service.settings import TasksSettings
from testkit.contract import run_schemathesis


def test_api_conforms_to_its_schema(database_url: str, public_keys_dir: Path, auth: Any) -> None:
    app = create_app(TasksSettings(database_url=database_url, auth_public_keys_dir=public_keys_dir))
    exercised = run_schemathesis(app, headers=auth("schemathesis"), max_examples=20, negative=True)
    assert {
        "GET /",
        "GET /tasks",
        "POST /task",
        "PUT /task/{task_id}",
        "DELETE /task/{task_id}",
        "POST /tasks/delete",
        "GET /admin/version/",
    } <= set(exercised)
