"""What clients send and receive, in the tutorial's shapes.

Bodies are read the way the tutorial's Flask app read them, `request.get_json(force=True)`: as
JSON whatever the Content-Type says, because its clients send `text/plain` or curl's default
`application/x-www-form-urlencoded` with a JSON body. What that app crashed on (no body, bad
JSON, a missing, non-string, empty or too long `task`) is a 400 here, naming the problem.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, StrictStr, ValidationError

from servicekit.bodies import MAX_BODY_BYTES, json_problem
from tasks_service.models import TASK_MAX


def _task_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    if len(value) > TASK_MAX:
        raise ValueError(f"must be at most {TASK_MAX} characters, not {len(value)}")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value  # stored as sent, as the tutorial's app did


TaskText = Annotated[StrictStr, AfterValidator(_task_text)]


class TaskIn(BaseModel):
    """A new or updated task. Other fields are ignored, as the tutorial's app ignored them."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"task": "Write the closing note"}]}
    )

    task: TaskText


class TaskOut(BaseModel):
    id: str
    task: str


class TaskList(BaseModel):
    data: list[TaskOut]


class Message(BaseModel):
    message: str


def task_body_openapi() -> dict[str, Any]:
    """`openapi_extra` of the routes that read a TaskIn with `task_body`."""
    schema = TaskIn.model_json_schema()
    schema.pop("title", None)
    # Some character that is neither whitespace nor NUL, and no NUL anywhere (`\S` alone would
    # let one NUL through as the non-whitespace one: generated clients sent "\x00" and got 400).
    schema["properties"]["task"].update(
        {"minLength": 1, "maxLength": TASK_MAX, "pattern": r"^[^\x00]*[^\s\x00][^\x00]*$"}
    )
    return {
        "requestBody": {
            "required": True,
            "description": "JSON, whatever the Content-Type (the tutorial's clients send "
            "`text/plain` or curl's default form type).",
            "content": {
                "application/json": {"schema": schema},
                "text/plain": {"schema": schema},
            },
        }
    }


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    return bytes(body)


async def task_body(request: Request) -> TaskIn:
    """FastAPI dependency: the body as a TaskIn, read as JSON whatever its Content-Type."""
    raw = await _read_limited(request)
    if not raw.strip():
        raise HTTPException(400, 'a JSON body is required: {"task": "..."}')
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(
            400, f'the body is not valid JSON ({json_problem(raw, exc)}); send {{"task": "..."}}'
        ) from None
    if not isinstance(data, dict):
        raise HTTPException(400, 'the JSON body must be an object: {"task": "..."}')
    try:
        return TaskIn.model_validate(data)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None
