"""RFC 9457 problem+json errors, 400 validation errors naming fields, and form-or-JSON bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from servicekit.bodies import MAX_BODY_BYTES

PROBLEM = "application/problem+json"


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_an_unexpected_error_answers_500_problem_without_the_traceback(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await start_app(make_settings())

    response = await client.get("/boom", headers={"X-Request-ID": "trace-boom"})

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"] == "trace-boom"
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an internal error occurred; quote the request id",
        "request_id": "trace-boom",
    }
    for leak in ("Traceback", "kaboom", "RuntimeError", "example_service"):
        assert leak not in response.text

    errors = [entry for entry in json_lines(capsys.readouterr().out) if entry["level"] == "ERROR"]
    assert len(errors) == 1
    error = errors[0]
    assert error["logger"] == "servicekit.errors"
    assert error["message"] == "unhandled error on GET /boom"
    assert error["request_id"] == "trace-boom"
    assert error["traceback"].startswith("Traceback (most recent call last):")
    assert (
        error["traceback"]
        .rstrip()
        .endswith("RuntimeError: kaboom: internal detail that must stay in the log")
    )


async def test_an_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
        "request_id": response.headers["x-request-id"],
    }


async def test_a_wrong_method_is_a_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/items/1")

    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["allow"] == "GET"
    assert response.json()["title"] == "Method Not Allowed"


async def test_a_bad_path_parameter_is_a_400_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/seven")

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["title"] == "Bad Request"
    assert body["errors"] == [
        {
            "field": "item_id",
            "message": "Input should be a valid integer, unable to parse string as an integer",
        }
    ]
    assert body["detail"] == (
        "item_id: Input should be a valid integer, unable to parse string as an integer"
    )


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({}, "text", "Field required"),
        ({"text": ""}, "text", "String should have at least 1 character"),
        ({"text": "x" * 51}, "text", "String should have at most 50 characters"),
        ({"text": 5}, "text", "Input should be a valid string"),
    ],
)
async def test_an_invalid_body_is_a_400_naming_the_field(
    payload: dict[str, Any], field: str, message: str, client: httpx.AsyncClient
) -> None:
    response = await client.post("/notes", json=payload)

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"] == [{"field": field, "message": message}]


async def test_form_or_json_accepts_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/notes", json={"text": "from json"})
    assert (response.status_code, response.json()) == (201, {"text": "from json"})


async def test_form_or_json_accepts_json_without_content_type(client: httpx.AsyncClient) -> None:
    response = await client.post("/notes", content=b'{"text": "bare"}')
    assert (response.status_code, response.json()) == (201, {"text": "bare"})


async def test_form_or_json_accepts_a_urlencoded_form(client: httpx.AsyncClient) -> None:
    response = await client.post("/notes", data={"text": "from a form"})
    assert (response.status_code, response.json()) == (201, {"text": "from a form"})


async def test_a_urlencoded_form_is_utf_8_escaped_or_not(client: httpx.AsyncClient) -> None:
    """curl -d 'text=Straße ü' sends the UTF-8 bytes unescaped; browsers and requests escape
    them. Both are the same text (Starlette alone would read the raw bytes as Latin-1)."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    raw = await client.post("/notes", content="text=Straße+ü".encode(), headers=form)
    assert (raw.status_code, raw.json()) == (201, {"text": "Straße ü"})
    escaped = await client.post("/notes", content=b"text=Stra%C3%9Fe+%C3%BC", headers=form)
    assert (escaped.status_code, escaped.json()) == (201, {"text": "Straße ü"})
    repeated = await client.post("/notes", content=b"text=first&text=last", headers=form)
    assert repeated.json() == {"text": "last"}


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"text=Stra\xdfe", "the form body is not UTF-8: percent-encode UTF-8 text, or send JSON"),
        (b"text=Stra%DFe", "the form body is not UTF-8: percent-encode UTF-8 text, or send JSON"),
        (b"&".join(b"f%d=x" % n for n in range(33)), "the form body has more than 32 fields"),
    ],
)
async def test_a_urlencoded_form_that_is_not_utf_8_or_too_many_fields_is_a_400(
    content: bytes, detail: str, client: httpx.AsyncClient
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post("/notes", content=content, headers=form)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == detail


async def test_form_or_json_accepts_multipart_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/notes", data={"text": "multipart"}, files={"upload": ("a.txt", b"file content")}
    )
    assert response.status_code == 400  # a file part is refused outright (max_files=0)
    assert response.json()["detail"] == "the form body could not be parsed"

    boundary = "kitboundary"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\nparts\r\n'
    response = await client.post(
        "/notes",
        content=f"{body}--{boundary}--\r\n".encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert (response.status_code, response.json()) == (201, {"text": "parts"})


async def test_a_multipart_field_that_is_not_utf_8_is_a_400(client: httpx.AsyncClient) -> None:
    """Starlette reads a multipart field that is not UTF-8 as Latin-1: stored "café" before."""
    body = b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\ncaf\xe9\r\n--b--\r\n'
    form = {"Content-Type": "multipart/form-data; boundary=b"}
    response = await client.post("/notes", content=body, headers=form)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == (
        "the form body is not UTF-8: percent-encode UTF-8 text, or send JSON"
    )
    utf8 = body.replace(b"caf\xe9", "café".encode())
    response = await client.post("/notes", content=utf8, headers=form)
    assert (response.status_code, response.json()) == (201, {"text": "café"})


async def test_form_validation_errors_name_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/notes", data={"text": ""})
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "text", "message": "String should have at least 1 character"}
    ]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "detail"),
    [
        (
            b'{"text": "unterminated"',
            "application/json",
            400,
            "the body is not valid JSON: unexpected end of data: line 1 column 24 (char 23)",
        ),
        # orjson's own words were "str is not valid UTF-8: surrogates not allowed".
        (
            '{"text": "café"}'.encode("latin-1"),
            "application/json",
            400,
            "the body is not valid JSON: it is not UTF-8 (send JSON as UTF-8)",
        ),
        (b'["a", "list"]', "application/json", 400, "the JSON body must be an object"),
        (b'"a string"', "application/json", 400, "the JSON body must be an object"),
        (b"null", "application/json", 400, "the JSON body must be an object"),
        (b"", "application/json", 400, "a request body is required (JSON or form-encoded)"),
        (b"", "", 400, "a request body is required (JSON or form-encoded)"),
        (
            b"text=hi",
            "text/plain",
            415,
            "send the body as application/json or application/x-www-form-urlencoded",
        ),
        (
            b"<text>hi</text>",
            "application/xml",
            415,
            "send the body as application/json or application/x-www-form-urlencoded",
        ),
    ],
)
async def test_form_or_json_refuses_unusable_bodies(
    content: bytes,
    content_type: str,
    status: int,
    detail: str | None,
    client: httpx.AsyncClient,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/notes", content=content, headers=headers)

    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    if detail is None:
        assert body["detail"].startswith("the body is not valid JSON: ")
    else:
        assert body["detail"] == detail


async def test_a_body_at_the_limit_is_read(client: httpx.AsyncClient) -> None:
    padding = " " * (MAX_BODY_BYTES - len(b'{"text": "edge"}'))
    content = b'{"text": "edge"}' + padding.encode()
    assert len(content) == MAX_BODY_BYTES

    response = await client.post(
        "/notes", content=content, headers={"Content-Type": "application/json"}
    )

    assert (response.status_code, response.json()) == (201, {"text": "edge"})


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("application/json", b'{"text": "big", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'),
        ("application/x-www-form-urlencoded", b"text=big&pad=" + b"x" * MAX_BODY_BYTES),
        ("application/x-www-form-urlencoded", b"text=" + b"x" * (MAX_BODY_BYTES + 1)),
    ],
)
async def test_an_oversized_body_is_413(
    content_type: str, content: bytes, client: httpx.AsyncClient
) -> None:
    response = await client.post("/notes", content=content, headers={"Content-Type": content_type})

    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == f"the body is larger than {MAX_BODY_BYTES} bytes"


async def test_openapi_documents_400_problems_and_never_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    schema = response.json()

    assert response.status_code == 200
    assert '"422"' not in response.text
    assert "HTTPValidationError" not in response.text
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
    item = schema["paths"]["/items/{item_id}"]["get"]["responses"]["400"]
    assert item["description"] == "Invalid request"
    problem_schema = item["content"][PROBLEM]["schema"]
    assert problem_schema["required"] == ["type", "title", "status"]
    assert "errors" in problem_schema["properties"]
    notes = schema["paths"]["/notes"]["post"]
    assert "400" in notes["responses"]
    assert set(notes["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
    }
    body_schema = notes["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["required"] == ["text"]


async def test_an_error_after_the_response_started_reaches_the_server(
    example: Any, make_settings: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Once the status line is out, no 500 can follow: the exception goes on to the server (which
    closes the connection), logged once with the status that was sent, as before."""
    app = example.create_app(make_settings())

    class StreamsThenFails:  # a raw ASGI endpoint (a class, so Starlette does not wrap it)
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise RuntimeError("after the start")

    app.router.add_route("/half", StreamsThenFails())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/half",
        "raw_path": b"/half",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"example.test")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    with pytest.raises(RuntimeError, match="after the start"):
        await app(scope, receive, send)

    assert [m["type"] for m in sent] == ["http.response.start"]
    assert sent[0]["status"] == 200
    lines = json_lines(capsys.readouterr().out)
    errors = [line for line in lines if line["logger"] == "servicekit.errors"]
    assert len(errors) == 1
    assert errors[0]["message"].startswith("unhandled error on GET ")
    assert "after the start" in errors[0]["traceback"]
    access = [line for line in lines if line["logger"] == "servicekit.access"]
    assert [(line["path"], line["status"]) for line in access] == [("/half", 200)]
