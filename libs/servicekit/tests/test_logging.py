"""JSON logs on stdout: one object per line, service/version/request_id, one access line per
request, and no credentials ever written."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line parsed as JSON; fails on any line that is not one JSON object."""
    entries = []
    for line in text.splitlines():
        if line.strip():
            entry = json.loads(line)
            assert isinstance(entry, dict), line
            entries.append(entry)
    return entries


def access_lines(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in entries if entry["logger"] == "servicekit.access"]


async def test_every_line_is_a_json_object_with_service_version_and_request_id(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # With an admin token, so that the start-up has no "no ADMIN_TOKEN" warning line.
    client = await start_app(make_settings(admin_token="test-admin-token-0123456789"))
    items = await client.get("/items/42", headers={"X-Request-ID": "trace-42"})
    threaded = await client.get("/sync-log")

    captured = capsys.readouterr()
    entries = json_lines(captured.out)

    assert captured.err == ""
    assert len(entries) == 4  # start-up, access /items, the sync route's own line, access /sync-log
    for entry in entries:
        assert entry["service"] == "example"
        assert entry["version"] == "1.4.2"
        assert "request_id" in entry
    assert entries[0]["logger"] == "servicekit.app"
    assert entries[0]["message"] == "example 1.4.2 started"
    assert entries[0]["request_id"] is None  # not inside a request
    assert items.headers["x-request-id"] == "trace-42"
    assert entries[1]["request_id"] == "trace-42"
    worker_line = entries[2]
    assert worker_line["message"] == "logged from a worker thread"
    assert worker_line["logger"] == "example"
    assert worker_line["request_id"] == threaded.headers["x-request-id"]
    assert entries[3]["request_id"] == threaded.headers["x-request-id"]


async def test_access_line_has_method_route_template_status_and_duration(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await start_app(make_settings())
    response = await client.get("/items/42", headers={"X-Request-ID": "trace-access"})

    (line,) = access_lines(json_lines(capsys.readouterr().out))

    assert response.status_code == 200
    duration = line.pop("duration_ms")
    assert isinstance(duration, float)
    assert 0 <= duration < 5000
    line.pop("time")
    assert line == {
        "level": "INFO",
        "service": "example",
        "version": "1.4.2",
        "request_id": "trace-access",
        "trace_id": None,  # tracing is off without OTEL_EXPORTER_OTLP_ENDPOINT
        "logger": "servicekit.access",
        "message": "GET /items/{item_id} 200",
        "method": "GET",
        "route": "/items/{item_id}",
        "path": "/items/42",
        "status": 200,
        "client": "203.0.113.7",
    }


async def test_one_access_line_per_request_whatever_the_outcome(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await start_app(make_settings())
    responses = [
        await client.get("/items/1"),
        await client.get("/items/not-a-number"),
        await client.get("/no/such/path"),
        await client.get("/boom"),
        await client.post("/notes", json={"text": "hello"}),
        await client.delete("/items/1"),
    ]

    lines = access_lines(json_lines(capsys.readouterr().out))

    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("GET", "/items/{item_id}", 200),
        ("GET", "/items/{item_id}", 400),
        ("GET", "unmatched", 404),
        ("GET", "/boom", 500),
        ("POST", "/notes", 201),
        ("DELETE", "/items/{item_id}", 405),
    ]
    assert [line["request_id"] for line in lines] == [
        response.headers["x-request-id"] for response in responses
    ]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_probes_and_scrapes_are_logged_only_at_debug(
    path: str,
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    migrated_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    quiet = await start_app(make_settings(database_url=migrated_url))
    capsys.readouterr()
    assert (await quiet.get(path)).status_code == 200
    assert json_lines(capsys.readouterr().out) == []  # not even the database's chatter

    verbose = await start_app(make_settings(database_url=migrated_url, log_level="DEBUG"))
    capsys.readouterr()
    assert (await verbose.get(path)).status_code == 200
    (line,) = access_lines(json_lines(capsys.readouterr().out))
    assert (line["level"], line["route"], line["status"]) == ("DEBUG", path, 200)


async def test_credentials_never_reach_the_logs(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.TOKEN-SECRET-7f3a.sig"
    password = "PASSWORD-SECRET-91c2"
    secrets = [token, password, "QUERY-SECRET-5d1e", "COOKIE-SECRET-22aa", "SHORTPW"]
    auth = {"Authorization": f"Bearer {token}", "Cookie": "session=COOKIE-SECRET-22aa"}
    # DEBUG is the most talkative level: if nothing leaks there, nothing leaks at INFO.
    client = await start_app(make_settings(log_level="DEBUG"))

    responses = [
        await client.get("/items/1?access_token=QUERY-SECRET-5d1e", headers=auth),
        await client.get("/boom", headers=auth),
        await client.get("/no/such/path", headers=auth),
        await client.post("/login", json={"username": "alice", "password": password}),
        await client.post("/login", data={"username": "alice", "password": password}),
        await client.post("/login", json={"username": "alice", "password": "SHORTPW"}),
        await client.post(
            "/login",
            content=f'{{"username": "alice", "password": "{password}"',
            headers={"Content-Type": "application/json", **auth},
        ),
    ]

    captured = capsys.readouterr()
    assert [response.status_code for response in responses] == [200, 500, 404, 200, 200, 400, 400]
    assert len(access_lines(json_lines(captured.out))) == len(responses)
    logins = [entry for entry in json_lines(captured.out) if entry["logger"] == "example"]
    assert [entry["message"] for entry in logins] == ["login for alice", "login for alice"]
    for secret in secrets:
        assert secret not in captured.out
        assert secret not in captured.err
        for response in responses:
            assert secret not in response.text
