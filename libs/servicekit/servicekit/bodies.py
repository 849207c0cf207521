"""Request bodies that arrive form-encoded or as JSON, as the book's clients send both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.formparsers import MultiPartParser

ModelT = TypeVar("ModelT", bound=BaseModel)

URLENCODED = "application/x-www-form-urlencoded"
FORM_TYPES = (URLENCODED, "multipart/form-data")
MAX_BODY_BYTES = 64 * 1024
MAX_FORM_FIELDS = 32
FORM_NOT_UTF_8 = "the form body is not UTF-8: percent-encode UTF-8 text, or send JSON"


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


def json_problem(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    """Why a body is not JSON, in words a person can act on: orjson calls bytes that are not
    UTF-8 (a Latin-1 "é") "str is not valid UTF-8: surrogates not allowed"."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not UTF-8 (send JSON as UTF-8)"
    return str(exc)


def _raise_validation(exc: ValidationError) -> None:
    errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
    raise RequestValidationError(errors)


def urlencoded_fields(body: bytes) -> dict[str, str]:
    """The fields of an application/x-www-form-urlencoded body, decoded as UTF-8 whether
    percent-encoded or not (a repeated name: its last value, as Starlette's forms give it).

    Starlette decodes the bytes a client left unescaped as Latin-1: `curl -d 'text=Straße'`
    (curl sends what was typed, raw UTF-8; the book's Flask reads it as UTF-8) would be stored
    as "StraÃ\x9fe". Bytes that are not UTF-8 are refused rather than guessed at."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except UnicodeDecodeError:
        raise HTTPException(400, FORM_NOT_UTF_8) from None
    except ValueError:  # parse_qsl's "Max number of fields exceeded"
        raise HTTPException(400, f"the form body has more than {MAX_FORM_FIELDS} fields") from None
    return dict(pairs)


class _StrictMultiPartParser(MultiPartParser):
    """Starlette's multipart parser, except that a field not in the body's charset (UTF-8
    unless its Content-Type says otherwise) raises UnicodeDecodeError: Starlette reads it as
    Latin-1 instead, so `caf\\xe9` was stored as "café" and any bytes became some text."""

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            part.data.decode(self._charset or "utf-8")
        super().on_part_end()


async def multipart_fields(request: Request) -> dict[str, str]:
    """The text fields of a multipart/form-data body (no file parts); 400 when malformed or
    not in its charset."""
    parser = _StrictMultiPartParser(
        request.headers, request.stream(), max_files=0, max_fields=MAX_FORM_FIELDS
    )
    try:
        form = await parser.parse()
    except UnicodeDecodeError:
        raise HTTPException(400, FORM_NOT_UTF_8) from None
    except Exception as exc:  # malformed multipart bodies raise parser-specific errors
        raise HTTPException(400, "the form body could not be parsed") from exc
    return {key: value for key, value in form.items() if isinstance(value, str)}


def form_or_json(model: type[ModelT]) -> Callable[[Request], Awaitable[ModelT]]:
    """A dependency that parses and validates the body into `model` whatever its encoding."""

    async def parse(request: Request) -> ModelT:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        data: Any
        if content_type in FORM_TYPES:
            # Read first (request.form() reuses the cached body): forms get the size limit too.
            raw = await request.body()
            if len(raw) > MAX_BODY_BYTES:
                raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            if content_type == URLENCODED:
                data = urlencoded_fields(raw)
            else:
                data = await multipart_fields(request)
        elif content_type in ("application/json", "") or content_type.endswith("+json"):
            raw = await request.body()
            if len(raw) > MAX_BODY_BYTES:
                raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            if not raw:
                raise HTTPException(400, "a request body is required (JSON or form-encoded)")
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise HTTPException(
                    400, f"the body is not valid JSON: {json_problem(raw, exc)}"
                ) from None
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
