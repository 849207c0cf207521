"""Issue 14, item 7: one anonymous search must not stall the service. A long search looks up a
bounded number of trigrams and still finds exactly the thoughts containing it; searches beyond
the per-process limit of slow queries get a fast 503 with Retry-After instead of a long queue."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from servicekit.pagination import PageRequest
from thoughts_service.main import create_app
from thoughts_service.models import Thought
from thoughts_service.search import MAX_TRIGRAMS, trigrams_looked_up
from thoughts_service.statements import search_statement

COMMON = (
    "the to and a of i in is it you that for on my this with be have was are not but so".split()  # noqa: SIM905
)
# What the attacker sent: a thousand characters of very common words.
ATTACK = " ".join(random.Random(14).choice(COMMON) for _ in range(400))[:1000]


def test_a_thousand_character_search_looks_up_a_bounded_number_of_trigrams() -> None:
    statement = search_statement("sqlite", ATTACK, PageRequest(limit=20))
    fts_query = statement.compile().params["fts_query"]
    assert trigrams_looked_up(fts_query) <= MAX_TRIGRAMS, fts_query


async def test_a_long_search_finds_exactly_the_thoughts_that_contain_it(
    client: httpx.AsyncClient, insert_thoughts: Callable[..., Any]
) -> None:
    head, tail = "The meeting about microservices ", " ended with coffee for everybody."
    wanted = head + "and Docker and Kubernetes" + tail
    # The same first and last characters (what the index is asked about), another middle.
    lookalike = head + "and nothing else at all!!" + tail
    ids = await insert_thoughts([("bruce", wanted), ("stephen", lookalike), ("bruce", "other")])

    response = await client.get("/api/thoughts/", params={"search": wanted.upper()})
    assert response.status_code == 200, response.text
    assert [thought["id"] for thought in response.json()] == [ids[0]]

    response = await client.get("/api/thoughts/", params={"search": ATTACK})
    assert (response.status_code, response.json()) == (200, [])


async def test_searches_beyond_the_slow_query_limit_get_a_fast_503(
    make_settings: Callable[..., Any], db_backend: str
) -> None:
    settings = make_settings(db_slow_queries=1, db_slow_query_wait_seconds=0.2)
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://thoughts.test"
        ) as client,
    ):
        async with app.state.db.sessionmaker() as session:
            session.add(Thought(username="bruce", text="microservices, again"))
            await session.commit()
        # Another search holds the only turn of the slow queries.
        async with app.state.db.slow_queries.turn():
            loop = asyncio.get_running_loop()
            started = loop.time()
            response = await client.get("/api/thoughts/", params={"search": "microservices"})
            waited = loop.time() - started
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert int(response.headers["retry-after"]) >= 1
            assert waited < 1.5, f"the refused search took {waited:.2f}s"
            # The short searches that walk the table are under the same bound.
            response = await client.get("/api/thoughts/", params={"search": "zq"})
            assert response.status_code == 503, response.text
            # Plain lists never wait for searches.
            assert (await client.get("/api/thoughts/")).status_code == 200
        response = await client.get("/api/thoughts/", params={"search": "microservices"})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("length", [1, 2, 3, 10, 11, 12, 40])
async def test_searches_of_every_length_around_the_bound_match_exactly(
    client: httpx.AsyncClient, insert_thoughts: Callable[..., Any], length: int
) -> None:
    text = "Zorblax quibbles with Quuxington about frobnication, twice."
    ids = await insert_thoughts([("bruce", text), ("bruce", text[::-1])])
    query = text[5 : 5 + length]
    response = await client.get("/api/thoughts/", params={"search": query})
    assert response.status_code == 200, response.text
    expected = [
        i for i, t in zip(ids, [text, text[::-1]], strict=True) if query.lower() in t.lower()
    ]
    assert [thought["id"] for thought in response.json()] == expected
