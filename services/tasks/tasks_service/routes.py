"""The HTTP API: the tutorial's routes, answers and status codes, plus pages and ownership.

Every answer of the tutorial's app is a 200 with a message, "No Task found!" included: its
clients read the message, so the status stays. What it crashed on answers 400 problem+json.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.exceptions import RequestValidationError

from servicekit.pagination import LINK_HEADER_RESPONSE, PageDep, paginate, set_next_link
from servicekit.problems import problem_openapi_response
from tasks_service.ids import ID_PATTERN, normalize_task_id
from tasks_service.metrics import TaskMetricsDep
from tasks_service.ownership import ListOwner
from tasks_service.repository import RepositoryDep
from tasks_service.schemas import Message, TaskIn, TaskList, task_body, task_body_openapi

api = APIRouter(tags=["tasks"])

SAVED = "Task saved successfully!"
UPDATED = "Task updated successfully!"
DELETED = "Task deleted successfully!"
NOT_FOUND = "No Task found!"
ALL_DELETED = "All Tasks deleted!"

Responses = dict[int | str, dict[str, Any]]
AUTH_RESPONSES: Responses = {
    401: problem_openapi_response(
        "An Authorization header that is not a valid token (or none, when the service requires one)"
    ),
    403: problem_openapi_response("The token's username cannot own a list"),
}
BODY_RESPONSES: Responses = {
    413: problem_openapi_response("The body is larger than 64 KiB"),
}


def _task_id(
    task_id: Annotated[
        str,
        Path(
            description="The task's id: 24 hexadecimal characters, as in the list.",
            json_schema_extra={"pattern": ID_PATTERN},
        ),
    ],
) -> str:
    try:
        return normalize_task_id(task_id)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("path", "task_id"), "msg": str(exc), "input": task_id}]
        ) from None


TaskId = Annotated[str, Depends(_task_id)]
TaskBody = Annotated[TaskIn, Depends(task_body)]


def _json(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


def _message(text: str) -> Response:
    return _json({"message": text})


def register_welcome(router: APIRouter, hostname: str) -> None:
    message = f"Welcome to Tasks app! I am running inside {hostname} pod!"

    @router.get("/", summary="Welcome, with the host's name", response_model=Message)
    async def welcome() -> Response:
        return _message(message)


@api.get(
    "/tasks",
    summary="List tasks, oldest first",
    response_model=TaskList,
    responses={200: LINK_HEADER_RESPONSE, **AUTH_RESPONSES},
)
async def list_tasks(
    owner: ListOwner, page: PageDep, tasks: RepositoryDep, request: Request
) -> Response:
    rows = await tasks.page(owner, page)
    result = paginate(rows, page, key=lambda row: row.seq)
    response = _json({"data": [row.to_json() for row in result.items]})
    set_next_link(response, request, result)
    return response


@api.post(
    "/task",
    summary="Add a task",
    response_model=Message,
    openapi_extra=task_body_openapi(),
    responses={**AUTH_RESPONSES, **BODY_RESPONSES},
)
async def create_task(
    owner: ListOwner, body: TaskBody, tasks: RepositoryDep, metrics: TaskMetricsDep
) -> Response:
    await tasks.create(owner, body.task)
    metrics.count("create", owner)
    return _message(SAVED)


@api.put(
    "/task/{task_id}",
    summary="Change a task's text",
    response_model=Message,
    openapi_extra=task_body_openapi(),
    responses={
        200: {"description": f'"{UPDATED}", or "{NOT_FOUND}" when your list has no such task'},
        **AUTH_RESPONSES,
        **BODY_RESPONSES,
    },
)
async def update_task(
    owner: ListOwner,
    task_id: TaskId,
    body: TaskBody,
    tasks: RepositoryDep,
    metrics: TaskMetricsDep,
) -> Response:
    found = await tasks.update(owner, task_id, body.task)
    metrics.count("update", owner, found=found)
    return _message(UPDATED if found else NOT_FOUND)


@api.delete(
    "/task/{task_id}",
    summary="Delete a task",
    response_model=Message,
    responses={
        200: {"description": f'"{DELETED}", or "{NOT_FOUND}" when your list has no such task'},
        **AUTH_RESPONSES,
    },
)
async def delete_task(
    owner: ListOwner, task_id: TaskId, tasks: RepositoryDep, metrics: TaskMetricsDep
) -> Response:
    found = await tasks.delete(owner, task_id)
    metrics.count("delete", owner, found=found)
    return _message(DELETED if found else NOT_FOUND)


@api.post(
    "/tasks/delete",
    summary="Delete every task of the list",
    response_model=Message,
    responses=AUTH_RESPONSES,
)
async def delete_all_tasks(
    owner: ListOwner, tasks: RepositoryDep, metrics: TaskMetricsDep
) -> Response:
    await tasks.delete_all(owner)
    metrics.count("delete_all", owner)
    return _message(ALL_DELETED)
