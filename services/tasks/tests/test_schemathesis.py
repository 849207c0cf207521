"""Generated requests against every operation of the tasks OpenAPI schema, in process: no
server errors, every response as the schema documents it, forbidden input refused with a 4xx."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tasks_service.main import create_app
from tasks_service.schemas import TaskIn, task_body_openapi
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


@pytest.mark.parametrize(
    "text", ["a", " a ", "tab\there", "\x00", "a\x00", "\x00a", " \x00 ", " ", "\n", "\u00a0"]
)
def test_the_schema_pattern_accepts_exactly_what_the_service_accepts(text: str) -> None:
    # Generated clients take the schema at its word: a text it allows must be stored, one it
    # forbids must be refused (the negative cases). The pattern once let a single NUL through.
    pattern = task_body_openapi()["requestBody"]["content"]["application/json"]["schema"]
    allowed = re.search(pattern["properties"]["task"]["pattern"], text) is not None
    try:
        TaskIn(task=text)
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert allowed == accepted, (text, allowed, accepted)
