"""Keyset pagination: opaque cursors, clamped limits, and RFC 8288 `Link: rel="next"` headers."""

from __future__ import annotations

import re

import httpx
import pytest

from servicekit.pagination import PageLimits, PageRequest, decode_cursor, encode_cursor, paginate

LINK = re.compile(r'^<(/[^>]*)>; rel="next"$')


def next_link(response: httpx.Response) -> str | None:
    header = response.headers.get("link")
    if header is None:
        return None
    match = LINK.match(header)
    assert match, header
    return match.group(1)


@pytest.mark.parametrize(
    ("key", "cursor"),
    [
        (10, "AAAAAAAAAAo"),
        (0, "AAAAAAAAAAA"),
        (-1, "__________8"),
        (2**63 - 1, "f_________8"),
        (-(2**63), "gAAAAAAAAAA"),
    ],
)
def test_cursors_are_11_urlsafe_characters_and_round_trip(key: int, cursor: str) -> None:
    assert encode_cursor(key) == cursor
    assert decode_cursor(cursor) == key


@pytest.mark.parametrize(
    "cursor", ["", "AAAAAAAAAA", "AAAAAAAAAAAA", "AAAAAAAAAA=", "AAAAAAAAA+/", "AAAAAAAAAAo\n"]
)
def test_anything_else_is_not_a_cursor(cursor: str) -> None:
    with pytest.raises(ValueError, match=r"^not a page cursor: "):
        decode_cursor(cursor)


@pytest.mark.parametrize(("default", "maximum"), [(0, 10), (11, 10)])
def test_page_limits_must_be_consistent(default: int, maximum: int) -> None:
    with pytest.raises(ValueError, match="must be between 1 and the maximum"):
        PageLimits(default=default, maximum=maximum)


def test_paginate_cuts_the_extra_row_into_a_cursor() -> None:
    page = PageRequest(limit=2)
    assert paginate([5, 6, 7], page, key=lambda n: n).items == [5, 6]
    assert paginate([5, 6, 7], page, key=lambda n: n).next_cursor == encode_cursor(6)
    assert paginate([5, 6], page, key=lambda n: n).next_cursor is None
    assert paginate([], page, key=lambda n: n).next_cursor is None


async def test_first_page_uses_the_default_size_and_links_to_the_next(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/numbers")

    assert response.status_code == 200
    assert response.json() == list(range(1, 11))
    assert response.headers["link"] == f'</numbers?cursor={encode_cursor(10)}>; rel="next"'


@pytest.mark.parametrize(
    ("order", "expected"), [("asc", list(range(1, 26))), ("desc", list(range(25, 0, -1)))]
)
async def test_following_the_links_reaches_every_row_exactly_once(
    order: str, expected: list[int], client: httpx.AsyncClient
) -> None:
    seen: list[int] = []
    sizes = []
    url: str | None = f"/numbers?order={order}&limit=7"
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200
        seen.extend(response.json())
        sizes.append(len(response.json()))
        url = next_link(response)

    assert seen == expected
    assert sizes == [7, 7, 7, 4]


async def test_the_link_keeps_the_other_parameters_and_replaces_the_cursor(
    client: httpx.AsyncClient,
) -> None:
    cursor = encode_cursor(20)
    response = await client.get(f"/numbers?order=desc&cursor={cursor}&limit=3")

    assert response.json() == [19, 18, 17]
    assert next_link(response) == f"/numbers?order=desc&limit=3&cursor={encode_cursor(17)}"


async def test_a_limit_above_the_maximum_is_clamped(client: httpx.AsyncClient) -> None:
    response = await client.get("/numbers?limit=500")
    assert response.json() == list(range(1, 21))
    assert next_link(response) == f"/numbers?limit=500&cursor={encode_cursor(20)}"


async def test_the_last_page_has_no_link(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/numbers?cursor={encode_cursor(20)}")
    assert response.json() == [21, 22, 23, 24, 25]
    assert "link" not in response.headers


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("order=up", "order"),
        ("cursor=abc", "cursor"),
    ],
)
async def test_bad_parameters_are_400_naming_the_field(
    query: str, field: str, client: httpx.AsyncClient
) -> None:
    response = await client.get(f"/numbers?{query}")

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == [field]


@pytest.mark.parametrize("cursor", ["abc", "AAAAAAAAAAo%0A", "AAAAAAAAAAo%20", "AAAAAAAAAA%3D"])
async def test_a_bad_cursor_is_400_with_a_readable_reason(
    cursor: str, client: httpx.AsyncClient
) -> None:
    response = await client.get(f"/numbers?cursor={cursor}")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "field": "cursor",
            "message": "not a page cursor: use the cursor of the previous page's Link header",
        }
    ]
