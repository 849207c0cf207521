"""Pagination of every list: default size, cap, Link next, cursors, stability under inserts."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager

from thoughts_service.main import create_app

LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def next_url(response: httpx.Response) -> str | None:
    header = response.headers.get("link")
    if header is None:
        return None
    match = LINK.match(header)
    assert match, header
    return match["url"]


async def fetch_all(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str] | None = None,
    between_pages: Any = None,
) -> tuple[list[int], list[int]]:
    """Follows Link headers; returns (ids in order, page sizes)."""
    ids: list[int] = []
    sizes: list[int] = []
    next_page: str | None = url
    while next_page is not None:
        response = await client.get(next_page, headers=headers)
        assert response.status_code == 200, response.text
        page = [thought["id"] for thought in response.json()]
        ids += page
        sizes.append(len(page))
        # A relative reference resolves against the URL it came with (RFC 3986 §5).
        link = next_url(response)
        next_page = urljoin(str(response.request.url), link) if link else None
        if next_page and between_pages:
            await between_pages()
    return ids, sizes


async def test_default_page_size_is_20_and_link_leads_to_the_rest(
    client: httpx.AsyncClient, insert_thoughts: Any
) -> None:
    ids = await insert_thoughts([("bruce", f"thought {n}") for n in range(45)])
    first = await client.get("/api/thoughts/")
    assert [t["id"] for t in first.json()] == ids[:20]
    url = next_url(first)
    assert url is not None
    assert url.startswith("/api/thoughts/?")
    collected, sizes = await fetch_all(client, "/api/thoughts/")
    assert collected == ids
    assert sizes == [20, 20, 5]


async def test_no_empty_last_page_when_rows_fill_pages_exactly(
    client: httpx.AsyncClient, insert_thoughts: Any
) -> None:
    ids = await insert_thoughts([("bruce", f"thought {n}") for n in range(40)])
    collected, sizes = await fetch_all(client, "/api/thoughts/")
    assert collected == ids
    assert sizes == [20, 20]


async def test_limit_above_the_cap_is_clamped_to_100(
    client: httpx.AsyncClient, insert_thoughts: Any
) -> None:
    ids = await insert_thoughts([("bruce", f"thought {n}") for n in range(130)])
    response = await client.get("/api/thoughts/", params={"limit": 1000})
    assert response.status_code == 200
    assert [t["id"] for t in response.json()] == ids[:100]
    url = next_url(response)
    assert url is not None
    assert parse_qs(urlsplit(url).query)["limit"] == ["1000"]
    collected, sizes = await fetch_all(client, "/api/thoughts/?limit=1000")
    assert collected == ids
    assert sizes == [100, 30]
    huge = await client.get("/api/thoughts/", params={"limit": 10**30})
    assert len(huge.json()) == 100


async def test_link_keeps_the_other_query_parameters(
    client: httpx.AsyncClient, insert_thoughts: Any
) -> None:
    await insert_thoughts([("bruce", f"Needle {n} & co") for n in range(5)])
    response = await client.get(
        "/api/thoughts/", params={"search": "needle", "limit": 2, "order": "desc", "x": "y"}
    )
    url = next_url(response)
    assert url is not None
    parts = urlsplit(url)
    assert parts.path == "/api/thoughts/"
    query = parse_qs(parts.query)
    assert query["search"] == ["needle"]
    assert query["limit"] == ["2"]
    assert query["order"] == ["desc"]
    assert query["x"] == ["y"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{11}", query["cursor"][0])


async def test_cursor_continuation_in_both_orders(
    client: httpx.AsyncClient, insert_thoughts: Any
) -> None:
    ids = await insert_thoughts([("bruce", f"thought {n}") for n in range(23)])
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        collected, sizes = await fetch_all(client, f"/api/thoughts/?limit=7&order={order}")
        assert collected == expected
        assert sizes == [7, 7, 7, 2]


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("listing", ["all", "mine", "search"])
async def test_no_duplicates_or_gaps_while_thoughts_arrive(
    client: httpx.AsyncClient,
    insert_thoughts: Any,
    post_thoughts: Any,
    auth: Any,
    order: str,
    listing: str,
) -> None:
    authors = ["alice" if n % 3 == 0 else "bruce" for n in range(17)]
    initial = list(
        zip(
            authors,
            await insert_thoughts([(a, f"Thought number {n}") for n, a in enumerate(authors)]),
            strict=True,
        )
    )
    arrived: list[tuple[str, int]] = []

    async def someone_posts() -> None:
        for author in ("bruce", "alice"):
            [thought] = await post_thoughts(author, [f"Thought number new {len(arrived)}"])
            arrived.append((author, thought["id"]))

    url, headers = {
        "all": ("/api/thoughts/?", None),
        "mine": ("/api/me/thoughts/?", auth("bruce")),
        "search": ("/api/thoughts/?search=NUMBER&", None),
    }[listing]
    collected, _ = await fetch_all(
        client, f"{url}limit=4&order={order}", headers, between_pages=someone_posts
    )

    def visible(rows: list[tuple[str, int]]) -> list[int]:
        return [id_ for author, id_ in rows if listing != "mine" or author == "bruce"]

    assert len(collected) == len(set(collected)), "a thought was listed twice"
    assert arrived, "nothing arrived between pages: the test tests nothing"
    if order == "asc":
        # Oldest first: whatever arrives lands after the cursor and is listed too, in order.
        assert collected == visible(initial) + visible(arrived)
    else:
        # Newest first: what arrives is above the first page; the walk down is unaffected.
        assert collected == visible(initial)[::-1]


async def test_deleting_between_pages_neither_repeats_nor_skips_the_others(
    client: httpx.AsyncClient, insert_thoughts: Any
) -> None:
    ids = await insert_thoughts([("bruce", f"thought {n}") for n in range(12)])
    deleted: list[int] = []

    async def delete_one_seen_and_one_unseen() -> None:
        for victim in (ids[len(deleted) * 2], ids[-1 - len(deleted) * 2]):
            if victim not in deleted:
                await client.delete(f"/admin/thoughts/{victim}/")
                deleted.append(victim)

    collected, _ = await fetch_all(
        client, "/api/thoughts/?limit=4", between_pages=delete_one_seen_and_one_unseen
    )
    assert collected == sorted(set(collected))
    unseen_deleted = {victim for victim in deleted if victim not in collected}
    assert set(collected) | unseen_deleted | set(deleted) == set(ids)


async def test_bad_cursor_is_400_naming_the_field(
    client: httpx.AsyncClient, assert_problem: Any, auth: Any
) -> None:
    for cursor in [
        "bad",
        "!!!!!!!!!!!",
        "AAAAAAAAAAAA",
        "AAAAAAAAAA",
        "AAAAAAAAAA=",
        "",
        "A" * 999,
    ]:
        for url, headers in (("/api/thoughts/", None), ("/api/me/thoughts/", auth("bruce"))):
            response = await client.get(url, params={"cursor": cursor}, headers=headers)
            assert_problem(response, 400, "cursor")
            assert "Link header" in response.json()["detail"]


async def test_any_well_formed_cursor_is_a_position(
    client: httpx.AsyncClient, insert_thoughts: Any
) -> None:
    ids = await insert_thoughts([("bruce", f"thought {n}") for n in range(3)])
    # "__________8" decodes to a negative key: everything is after it, nothing before it.
    after_negative = await client.get("/api/thoughts/", params={"cursor": "__________8"})
    assert [t["id"] for t in after_negative.json()] == ids
    desc = await client.get("/api/thoughts/", params={"cursor": "__________8", "order": "desc"})
    assert desc.json() == []
    # "f_________8" is the largest key: everything is before it.
    top = await client.get("/api/thoughts/", params={"cursor": "f_________8", "order": "desc"})
    assert [t["id"] for t in top.json()] == ids[::-1]


async def test_page_sizes_come_from_settings(make_settings: Any) -> None:
    app = create_app(make_settings(page_size=2, max_page_size=3))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        async with app.state.db.sessionmaker() as session:
            from thoughts_service.models import Thought

            session.add_all([Thought(username="u", text=f"t{n}") for n in range(5)])
            await session.commit()
        assert len((await http.get("/api/thoughts/")).json()) == 2
        assert len((await http.get("/api/thoughts/?limit=50")).json()) == 3
