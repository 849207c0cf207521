"""X-Request-ID: accepted when safe, generated otherwise, forwarded on every outgoing call."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from servicekit.context import accept_request_id, request_id_var
from servicekit.http import create_http_client

GENERATED = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize(
    "request_id",
    [
        "3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f",
        "3f2b8c1e4d5a4b6c9e7f0a1b2c3d4e5f",
        "support-case-42",
        "A_b-9" + "x" * 59,
    ],
)
async def test_a_well_formed_request_id_is_echoed(
    request_id: str, client: httpx.AsyncClient
) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        # Issue 14: ids a client chose freely were kept verbatim. Not ids: kept only in the log.
        "abc-123_DEF.456:789+/=",
        "x",
        "short",
        "a" * 65,
        "../../etc/passwd",
        "-leading-dash",
        "has space",
        "line\nbreak",
        "trailing-newline\n",
        "tab\there",
        "bell\x07",
        "semi;colon",
        'quo"te',
        "",
    ],
)
async def test_an_unsafe_request_id_is_replaced(request_id: str, client: httpx.AsyncClient) -> None:
    response = await client.get("/items/7", headers={"X-Request-ID": request_id})

    replaced = response.headers["x-request-id"]
    assert replaced != request_id
    assert GENERATED.match(replaced)


async def test_a_refused_request_id_is_logged_beside_our_own(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await start_app(make_settings())  # here: its log goes to this test's capture
    response = await client.get("/items/7", headers={"X-Request-ID": "case/42\u00e9".encode()})
    access = [
        entry
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{")
        for entry in [orjson.loads(line)]
        if entry["logger"] == "servicekit.access"
    ]
    assert len(access) == 1
    assert access[0]["request_id"] == response.headers["x-request-id"]
    assert GENERATED.match(access[0]["request_id"])
    # The header's bytes, as the server decodes them (Latin-1), escaped.
    assert access[0]["client_request_id"] == "case/42\\xc3\\xa9"


@pytest.mark.parametrize("candidate", ["trailing-newline\n", "a" * 129, "nul\x00", "é"])
def test_accept_request_id_rejects_what_could_inject(candidate: str) -> None:
    accepted = accept_request_id(candidate)
    assert accepted != candidate
    assert GENERATED.match(accepted)


async def test_a_missing_request_id_is_generated_per_request(client: httpx.AsyncClient) -> None:
    first = await client.get("/items/1")
    second = await client.get("/items/1")

    assert GENERATED.match(first.headers["x-request-id"])
    assert GENERATED.match(second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_the_http_client_forwards_the_incoming_request_id(
    live_server: Callable[..., str],  # first: set up first, so it stops after the app
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
) -> None:
    downstream = live_server(service_name="downstream")
    client = await start_app(make_settings(downstream_url=downstream))

    response = await client.get("/call-downstream", headers={"X-Request-ID": "trace-fwd-1"})

    assert response.status_code == 200
    assert response.json() == {"downstream_received": "trace-fwd-1"}


async def test_the_http_client_forwards_a_generated_request_id(
    live_server: Callable[..., str],  # first: set up first, so it stops after the app
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
) -> None:
    downstream = live_server(service_name="downstream")
    client = await start_app(make_settings(downstream_url=downstream))

    response = await client.get("/call-downstream")

    generated = response.headers["x-request-id"]
    assert GENERATED.match(generated)
    assert response.json() == {"downstream_received": generated}


async def test_the_http_client_adds_nothing_outside_a_request_and_keeps_explicit_ids(
    live_server: Callable[..., str],
) -> None:
    downstream = live_server(service_name="downstream")
    async with create_http_client(base_url=downstream) as http:
        outside = await http.get("/echo-request-id")
        token = request_id_var.set("ctx-id-1")
        try:
            from_context = await http.get("/echo-request-id")
            explicit = await http.get("/echo-request-id", headers={"X-Request-ID": "explicit-2"})
        finally:
            request_id_var.reset(token)

    assert outside.json() == {"received": None}
    assert from_context.json() == {"received": "ctx-id-1"}
    assert explicit.json() == {"received": "explicit-2"}
