"""RFC 9457 problem+json errors: every error a client sees has the same readable shape.

Validation failures answer 400 (as the book's Flask-RESTPlus services did) and name each field.
Unexpected exceptions answer 500 with the request id only; the traceback goes to the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from servicekit.admission import Overloaded
from servicekit.context import current_request_id
from servicekit.unavailable import RETRY_AFTER_SECONDS, DatabaseUnavailable

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_body(status: int, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    return body


def problem_response(
    status: int,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    return Response(
        content=orjson.dumps(problem_body(status, detail, **extra)),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "text") -> "text"; ("query", "limit") -> "limit"; ("body",) -> "body"
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] in {"body", "query", "path", "header", "cookie", "form"}:
        parts = parts[1:]
    return ".".join(parts)


def validation_errors(errors: Any) -> list[dict[str, str]]:
    result = []
    for error in errors:
        message = str(error.get("msg", "invalid value"))
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        result.append({"field": _field_name(error.get("loc", ())), "message": message})
    return result


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _validation_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return problem_response(400, detail, errors=errors)


async def _overloaded(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Overloaded)
    return problem_response(
        503,
        f"the service is busy with expensive requests; try again shortly ({exc})",
        headers={"Retry-After": str(exc.retry_after_seconds)},
    )


def unavailable_response(exc: DatabaseUnavailable) -> Response:
    return problem_response(503, exc.detail(), headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DatabaseUnavailable)
    return unavailable_response(exc)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_exception)
    app.add_exception_handler(Overloaded, _overloaded)
    # The drivers' own connection errors reach the kit's middleware instead (as_unavailable).
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status"],
}


def problem_openapi_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}}


def patch_openapi_validation_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents validation errors as 422; ours are 400 problem+json."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses") if isinstance(operation, dict) else None
            if not responses:
                continue
            if responses.pop("422", None) is not None or "400" not in responses:
                responses.setdefault("400", problem_openapi_response("Invalid request"))
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return schema
