"""Hostile and broken requests: a clear 4xx problem naming what is wrong, never a 500, and
nothing stored is lost or added."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

BIG = 10**30


@dataclass
class Case:
    name: str
    method: str
    path: str
    status: int
    named_field: str | None = None
    authenticated: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)


CASES = [
    # Path parameters
    Case("id not an int", "GET", "/api/thoughts/abc/", 400, "thought_id"),
    Case("id a float", "GET", "/api/thoughts/1.5/", 400, "thought_id"),
    Case("id huge", "GET", f"/api/thoughts/{BIG}/", 400, "thought_id"),
    Case("id just above int64", "GET", f"/api/thoughts/{2**63}/", 400, "thought_id"),
    Case("id zero", "GET", "/api/thoughts/0/", 400, "thought_id"),
    Case("id negative", "GET", "/api/thoughts/-1/", 400, "thought_id"),
    Case("id sql", "GET", "/api/thoughts/1%20OR%201=1/", 400, "thought_id"),
    Case("admin delete id huge", "DELETE", f"/admin/thoughts/{BIG}/", 400, "thought_id"),
    Case("admin delete id text", "DELETE", "/admin/thoughts/x/", 400, "thought_id"),
    Case("my delete id negative", "DELETE", "/api/me/thoughts/-5/", 400, "thought_id", True),
    Case(
        "my delete id max int64, absent",
        "DELETE",
        f"/api/me/thoughts/{2**63 - 1}/",
        404,
        None,
        True,
    ),
    # Query parameters
    Case("limit negative", "GET", "/api/thoughts/?limit=-1", 400, "limit"),
    Case("limit zero", "GET", "/api/thoughts/?limit=0", 400, "limit"),
    Case("limit text", "GET", "/api/thoughts/?limit=ten", 400, "limit"),
    Case("limit float", "GET", "/api/thoughts/?limit=2.5", 400, "limit"),
    Case("limit empty", "GET", "/api/thoughts/?limit=", 400, "limit"),
    Case("limit 5000 digits", "GET", "/api/thoughts/?limit=" + "9" * 5000, 400, "limit"),
    Case("my limit negative", "GET", "/api/me/thoughts/?limit=-3", 400, "limit", True),
    Case("order unknown", "GET", "/api/thoughts/?order=sideways", 400, "order"),
    Case("cursor garbage", "GET", "/api/thoughts/?cursor=%27%3B--", 400, "cursor"),
    Case("cursor too long", "GET", "/api/thoughts/?cursor=" + "A" * 5000, 400, "cursor"),
    Case("search with NUL", "GET", "/api/thoughts/?search=a%00b", 400, "search"),
    Case("search too long", "GET", "/api/thoughts/?search=" + "a" * 1001, 400, "search"),
    # Bodies
    Case("text missing", "POST", "/api/me/thoughts/", 400, "text", True, {"json": {}}),
    Case("text empty", "POST", "/api/me/thoughts/", 400, "text", True, {"json": {"text": ""}}),
    Case(
        "text blank",
        "POST",
        "/api/me/thoughts/",
        400,
        "text",
        True,
        {"json": {"text": " \t\n\u3000 "}},
    ),
    Case(
        "text too long",
        "POST",
        "/api/me/thoughts/",
        400,
        "text",
        True,
        {"json": {"text": "x" * 251}},
    ),
    Case("text a number", "POST", "/api/me/thoughts/", 400, "text", True, {"json": {"text": 42}}),
    Case("text null", "POST", "/api/me/thoughts/", 400, "text", True, {"json": {"text": None}}),
    Case("text a list", "POST", "/api/me/thoughts/", 400, "text", True, {"json": {"text": ["a"]}}),
    Case(
        "text with NUL",
        "POST",
        "/api/me/thoughts/",
        400,
        "text",
        True,
        {"json": {"text": "a\x00b"}},
    ),
    Case(
        "form text with NUL",
        "POST",
        "/api/me/thoughts/",
        400,
        "text",
        True,
        {
            "content": b"text=a%00b",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
    ),
    Case(
        "form text missing",
        "POST",
        "/api/me/thoughts/",
        400,
        "text",
        True,
        {"data": {"username": "x"}},
    ),
    Case(
        "form text too long",
        "POST",
        "/api/me/thoughts/",
        400,
        "text",
        True,
        {"data": {"text": "y" * 300}},
    ),
    Case("body a JSON list", "POST", "/api/me/thoughts/", 400, None, True, {"json": ["text"]}),
    Case(
        "body invalid JSON",
        "POST",
        "/api/me/thoughts/",
        400,
        None,
        True,
        {"content": b'{"text": ', "headers": {"content-type": "application/json"}},
    ),
    Case(
        "body lone surrogate",
        "POST",
        "/api/me/thoughts/",
        400,
        None,
        True,
        {"content": b'{"text": "\\ud800"}', "headers": {"content-type": "application/json"}},
    ),
    Case(
        "body invalid UTF-8",
        "POST",
        "/api/me/thoughts/",
        400,
        None,
        True,
        {"content": b'{"text": "\xff\xfe"}', "headers": {"content-type": "application/json"}},
    ),
    Case(
        "body empty",
        "POST",
        "/api/me/thoughts/",
        400,
        None,
        True,
        {"content": b"", "headers": {"content-type": "application/json"}},
    ),
    Case(
        "body huge JSON",
        "POST",
        "/api/me/thoughts/",
        413,
        None,
        True,
        {"json": {"text": "z" * 1_000_000}},
    ),
    Case(
        "body huge form",
        "POST",
        "/api/me/thoughts/",
        413,
        None,
        True,
        {"data": {"text": "z" * 1_000_000}},
    ),
    Case(
        "content type text/plain",
        "POST",
        "/api/me/thoughts/",
        415,
        None,
        True,
        {"content": b"text=hi", "headers": {"content-type": "text/plain"}},
    ),
    Case(
        "content type xml",
        "POST",
        "/api/me/thoughts/",
        415,
        None,
        True,
        {"content": b"<text>hi</text>", "headers": {"content-type": "application/xml"}},
    ),
    Case(
        "multipart with a file",
        "POST",
        "/api/me/thoughts/",
        400,
        None,
        True,
        {"files": {"text": ("a.txt", b"hi")}},
    ),
    # Methods
    Case("PUT a list", "PUT", "/api/thoughts/", 405),
    Case("PATCH a thought", "PATCH", "/api/thoughts/1/", 405),
]


async def test_hostile_requests_get_clear_4xx_and_lose_nothing(
    client: httpx.AsyncClient,
    post_thoughts: Any,
    auth: Any,
    count_rows: Any,
    assert_problem: Any,
) -> None:
    stored = await post_thoughts("bruce", ["one", "two", "three"])
    for case in CASES:
        kwargs = dict(case.kwargs)
        headers = dict(kwargs.pop("headers", {}))
        if case.authenticated:
            headers.update(auth("bruce"))
        response = await client.request(case.method, case.path, headers=headers, **kwargs)
        try:
            assert_problem(response, case.status, case.named_field)
        except AssertionError as exc:
            raise AssertionError(f"case {case.name!r}: {exc}") from None
    allowed = await client.put("/api/thoughts/")
    assert allowed.headers["allow"] == "GET"
    assert await count_rows() == len(stored)
    listed = (await client.get("/api/thoughts/")).json()
    assert listed == stored
