"""LEGACY_COMPATIBILITY lists: every row for a request that does not page, streamed by batches."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from servicekit.pagination import PageRequest
from testkit.tokens import TokenSigner
from thoughts_service.full_lists import FullLists
from thoughts_service.main import create_app
from thoughts_service.repository import ThoughtRow
from thoughts_service.settings import ThoughtsSettings


@pytest.fixture
async def legacy_client(
    make_settings: Callable[..., ThoughtsSettings],
) -> AsyncIterator[httpx.AsyncClient]:
    # A batch far smaller than the list, so that a list takes many reads.
    app = create_app(make_settings(legacy_compatibility=True, legacy_list_batch_size=7))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://thoughts.test") as http:
            yield http


async def _post(client: httpx.AsyncClient, headers: dict[str, str], texts: list[str]) -> None:
    for text in texts:
        response = await client.post("/api/me/thoughts/", data={"text": text}, headers=headers)
        assert response.status_code == 201, response.text


async def test_unpaged_lists_answer_every_row_oldest_first(
    legacy_client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    await _post(legacy_client, auth("bruce"), [f"bruce {n} apple" for n in range(30)])
    await _post(legacy_client, auth("stephen"), [f"stephen {n}" for n in range(5)])

    mine = await legacy_client.get("/api/me/thoughts/", headers=auth("bruce"))
    assert mine.status_code == 200
    assert [t["text"] for t in mine.json()] == [f"bruce {n} apple" for n in range(30)]
    assert "link" not in mine.headers

    everybody = (await legacy_client.get("/api/thoughts/")).json()
    assert len(everybody) == 35
    assert [t["id"] for t in everybody] == sorted(t["id"] for t in everybody)

    found = (await legacy_client.get("/api/thoughts/", params={"search": "APPLE"})).json()
    assert [t["text"] for t in found] == [f"bruce {n} apple" for n in range(30)]

    newest_first = (await legacy_client.get("/api/thoughts/", params={"order": "desc"})).json()
    assert newest_first == list(reversed(everybody))


async def test_paging_requests_keep_paging(
    legacy_client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    await _post(legacy_client, auth("bruce"), [f"thought {n}" for n in range(25)])
    first = await legacy_client.get("/api/thoughts/", params={"limit": 10})
    assert len(first.json()) == 10
    assert 'rel="next"' in first.headers["link"]
    next_url = first.headers["link"].split(">")[0].lstrip("<")
    second = await legacy_client.get(next_url)
    assert [t["text"] for t in second.json()] == [f"thought {n}" for n in range(10, 20)]


async def test_without_compatibility_lists_stay_paged(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    await _post(client, auth("bruce"), [f"thought {n}" for n in range(25)])
    response = await client.get("/api/thoughts/")
    assert len(response.json()) == 20
    assert "link" in response.headers


async def test_tokens_without_audience_need_compatibility(
    client: httpx.AsyncClient,
    legacy_client: httpx.AsyncClient,
    token_signer: TokenSigner,
) -> None:
    """What a users service in LEGACY_COMPATIBILITY issues: our token, without `aud`."""
    token = token_signer.sign("bruce", without=("aud",))
    no_aud = {"Authorization": f"Bearer {token}"}
    refused = await client.get("/api/me/thoughts/", headers=no_aud)
    assert refused.status_code == 401
    assert "missing aud" in refused.json()["detail"]
    assert (await legacy_client.get("/api/me/thoughts/", headers=no_aud)).status_code == 200


async def test_a_million_rows_stream_in_bounded_memory() -> None:
    """The book's server held the whole list (2 GB at a million rows); this holds one batch."""
    total = 1_000_000
    batch = 1000
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    reads = 0

    async def fetch(page: PageRequest) -> list[ThoughtRow]:
        nonlocal reads
        reads += 1
        start = (page.after or 0) + 1
        stop = min(total, start + page.fetch_limit - 1)
        return [
            ThoughtRow(i, "bruce", f"thought number {i}", stamp) for i in range(start, stop + 1)
        ]

    tracemalloc.start()
    try:
        response = await FullLists(batch).response(fetch, "asc")
        size = 0
        last = b""
        started = time.monotonic()
        async for chunk in response.body_iterator:
            assert isinstance(chunk, bytes)
            size += len(chunk)
            last = chunk[-200:] if len(chunk) > 1 else last + chunk
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reads == total // batch
    assert size > 70_000_000  # about 75 bytes per row: really a million rows
    assert last.endswith(b'"text":"thought number 1000000","timestamp":"2026-01-01T00:00:00Z"}]')
    assert peak < 5_000_000, f"peak {peak} bytes: the list is being held in memory"
    assert time.monotonic() - started < 120


async def test_an_empty_list_is_an_empty_array() -> None:
    async def fetch(page: PageRequest) -> list[ThoughtRow]:
        return []

    response = await FullLists(10).response(fetch, "asc")
    body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[misc]
    assert orjson.loads(body) == []
