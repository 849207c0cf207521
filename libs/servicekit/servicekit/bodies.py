"""Request bodies that arrive form-encoded or as JSON, as the book's clients send both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_BODY_BYTES = 64 * 1024


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


def body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose body comes from `form_or_json(model)`."""
    schema = _inline_schema(model)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }
    }


def _raise_validation(exc: ValidationError) -> None:
    errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
    raise RequestValidationError(errors)


def form_or_json(model: type[ModelT]) -> Callable[[Request], Awaitable[ModelT]]:
    """A dependency that parses and validates the body into `model` whatever its encoding."""

    async def parse(request: Request) -> ModelT:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        data: Any
        if content_type in FORM_TYPES:
            # Read first (request.form() reuses the cached body): forms get the size limit too.
            if len(await request.body()) > MAX_BODY_BYTES:
                raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            try:
                form = await request.form(max_files=0, max_fields=32)
            except Exception as exc:  # malformed multipart bodies raise parser-specific errors
                raise HTTPException(400, "the form body could not be parsed") from exc
            data = {key: value for key, value in form.items() if isinstance(value, str)}
        elif content_type in ("application/json", "") or content_type.endswith("+json"):
            raw = await request.body()
            if len(raw) > MAX_BODY_BYTES:
                raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            if not raw:
                raise HTTPException(400, "a request body is required (JSON or form-encoded)")
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise HTTPException(400, f"the body is not valid JSON: {exc}") from None
            if not isinstance(data, dict):
                raise HTTPException(400, "the JSON body must be an object")
        else:
            raise HTTPException(
                415, "send the body as application/json or application/x-www-form-urlencoded"
            )
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            _raise_validation(exc)
            raise  # unreachable: keeps type checkers sure we never return None

    return parse
