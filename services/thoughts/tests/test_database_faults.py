"""A PostgreSQL that stops answering, refuses connections or drops them (issue 14, items 1 and 2).

The fault is injected by the test itself: the service reaches the real PostgreSQL through a
TCP proxy (testkit.faults.FaultProxy) that the test black-holes, makes refuse, or cuts. Never
the machine's PostgreSQL server. During the outage every request must answer in bounded time
with 503 problem+json and Retry-After (never 500, never a hang), /readyz within a second, and
a write whose request was answered 503 must not be committed when the network comes back.

Each test prints one line of figures (statuses, latencies, recovery time) for the closing note.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from testkit import DatabaseFactory, postgres_available
from testkit.databases import POSTGRES_ADMIN_URL, need
from testkit.faults import FaultProxy
from thoughts_service.main import MIGRATIONS_DIR, create_app

# How long the test waits for one answer before it calls the request hung (the code before the
# fix hung for the whole outage): the fix must answer well within it.
HUNG = 8.0
# The service's deadlines here (DB_*_TIMEOUT_SECONDS), shorter than the defaults (2, 2, 3 s) so
# the test is quick. A request waits at most for a pooled connection and then one statement.
DEADLINES = {
    "db_connect_timeout_seconds": 1.0,
    "db_acquire_timeout_seconds": 1.0,
    "db_query_timeout_seconds": 2.0,
    "statement_timeout_seconds": 1.0,
}
# What "bounded" means for a request during the outage: the sum of its deadlines, at worst
# (an ORM session waits for the pool, its pre-ping times out, its reconnect too), plus a
# little; and for /readyz.
REQUEST_BOUND = 4.5
READYZ_BOUND = 1.0


@dataclass
class Outcome:
    what: str
    status: int | str  # "hung" when no answer came within HUNG
    seconds: float
    retry_after: str | None = None
    content_type: str = ""
    text: str = ""


@pytest.fixture
def postgres_url(database_factory: DatabaseFactory) -> str:
    reason = postgres_available()
    if reason:
        need(reason)
    return database_factory.fresh("postgresql", MIGRATIONS_DIR)


@pytest.fixture
def database_url(postgres_url: str, proxy: FaultProxy) -> str:
    """PostgreSQL only, and through the proxy (replaces conftest's SQLite/PostgreSQL one)."""
    return proxy.route(postgres_url)


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[FaultProxy]:
    target = urlsplit(postgres_url)
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 5432) as fault_proxy:
        yield fault_proxy


@pytest.fixture
async def app(make_settings: Callable[..., Any]) -> Any:
    application = create_app(make_settings(db_pool_size=2, **DEADLINES))
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://thoughts.test"
    ) as http:
        yield http


async def timed(what: str, call: Any) -> Outcome:
    started = time.monotonic()
    try:
        response = await asyncio.wait_for(call, HUNG)
    except TimeoutError:
        return Outcome(what, "hung", time.monotonic() - started)
    return Outcome(
        what,
        response.status_code,
        time.monotonic() - started,
        response.headers.get("retry-after"),
        response.headers.get("content-type", ""),
        response.text,
    )


def stored_texts(postgres_url: str) -> list[str]:
    """Read from PostgreSQL directly, not through the proxy or the service."""
    name = urlsplit(postgres_url).path.lstrip("/")
    admin = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    with psycopg.connect(f"{admin}/{name}", connect_timeout=3) as connection:
        return [row[0] for row in connection.execute("SELECT text FROM thoughts").fetchall()]


def summary(name: str, outcomes: list[Outcome], recovery: float | None = None) -> str:
    statuses = Counter(str(outcome.status) for outcome in outcomes)
    slowest = max(outcome.seconds for outcome in outcomes)
    line = f"[{name}] {dict(statuses)} slowest {slowest:.2f}s"
    readyz = [outcome for outcome in outcomes if outcome.what == "readyz"]
    if readyz:
        line += f" readyz {readyz[0].status} in {readyz[0].seconds:.2f}s"
    if recovery is not None:
        line += f"; recovered {recovery:.2f}s after the fault ended"
    return line


def assert_unavailable(outcomes: list[Outcome], bound: float = REQUEST_BOUND) -> None:
    for outcome in outcomes:
        assert outcome.status == 503, outcome
        assert outcome.seconds < bound, outcome
        assert outcome.retry_after, outcome
        assert outcome.content_type.startswith("application/problem+json"), outcome


async def outage_requests(client: httpx.AsyncClient, auth: Any, thought_id: int) -> list[Outcome]:
    """What arrives during an outage: lists, posts, a delete (an ORM session), a probe."""
    calls = [timed("readyz", client.get("/readyz"))]
    calls += [
        timed("list", client.get("/api/me/thoughts/", headers=auth("bruce"))) for _ in range(6)
    ]
    calls += [
        timed(
            "post",
            client.post("/api/me/thoughts/", json={"text": f"outage {n}"}, headers=auth("bruce")),
        )
        for n in range(4)
    ]
    calls.append(
        timed("delete", client.delete(f"/api/me/thoughts/{thought_id}/", headers=auth("bruce")))
    )
    return list(await asyncio.gather(*calls))


async def recovery_seconds(client: httpx.AsyncClient, auth: Any, since: float) -> float:
    while True:
        answer = await timed("list", client.get("/api/me/thoughts/", headers=auth("bruce")))
        ready = await timed("readyz", client.get("/readyz"))
        if answer.status == 200 and ready.status == 200:
            return time.monotonic() - since
        assert time.monotonic() - since < 20, (answer, ready)
        await asyncio.sleep(0.1)


async def warm_up(client: httpx.AsyncClient, auth: Any) -> int:
    created = await client.post("/api/me/thoughts/", json={"text": "before"}, headers=auth("bruce"))
    assert created.status_code == 201, created.text
    assert (await client.get("/api/me/thoughts/", headers=auth("bruce"))).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    return int(created.json()["id"])


async def test_a_black_holed_database_gives_fast_503s_and_no_late_writes(
    client: httpx.AsyncClient, auth: Any, proxy: FaultProxy, postgres_url: str
) -> None:
    thought_id = await warm_up(client, auth)

    proxy.black_hole()
    outcomes = await outage_requests(client, auth, thought_id)
    ended = time.monotonic()
    proxy.restore()
    recovery = await recovery_seconds(client, auth, ended)
    print(summary("black hole", outcomes, recovery))

    readyz = next(outcome for outcome in outcomes if outcome.what == "readyz")
    assert readyz.status == 503, readyz
    assert readyz.seconds < READYZ_BOUND, readyz
    assert_unavailable([outcome for outcome in outcomes if outcome.what != "readyz"])
    # The posts answered 503 while their bytes were held; delivered now, they must not commit.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        late = [text for text in stored_texts(postgres_url) if text.startswith("outage")]
        assert late == [], f"answered 503, committed later: {late}"
        await asyncio.sleep(0.2)


async def test_a_database_that_refuses_connections_gives_fast_503s_never_500(
    client: httpx.AsyncClient, auth: Any, proxy: FaultProxy
) -> None:
    thought_id = await warm_up(client, auth)

    proxy.refuse()  # the open connections are reset, new ones refused
    outcomes = await outage_requests(client, auth, thought_id)
    ended = time.monotonic()
    proxy.restore()
    recovery = await recovery_seconds(client, auth, ended)
    print(summary("refused", outcomes, recovery))

    readyz = next(outcome for outcome in outcomes if outcome.what == "readyz")
    assert readyz.status == 503, readyz
    assert readyz.seconds < READYZ_BOUND, readyz
    # Every waiter of the pool is failed fast, not only the first (the pool holds 2).
    assert_unavailable([outcome for outcome in outcomes if outcome.what != "readyz"], bound=1.0)


async def test_connections_cut_mid_flight_give_503_never_500(
    client: httpx.AsyncClient, auth: Any, proxy: FaultProxy
) -> None:
    thought_id = await warm_up(client, auth)

    opened = proxy.connections
    proxy.black_hole()  # requests in flight on the pooled connections ...
    in_flight = asyncio.ensure_future(outage_requests(client, auth, thought_id))
    while proxy.connections == opened:  # ... and a new connection being opened, held
        assert not in_flight.done()
        await asyncio.sleep(0.01)
    proxy.cut()  # ... when the server side goes away (a terminated backend, a restart)
    proxy.restore()
    outcomes = await in_flight
    print(summary("cut", outcomes))

    for outcome in outcomes:
        assert outcome.status in (200, 201, 204, 503), outcome
        assert outcome.seconds < REQUEST_BOUND, outcome
        if outcome.status == 503 and outcome.what != "readyz":
            assert outcome.retry_after, outcome
    assert (await client.get("/api/me/thoughts/", headers=auth("bruce"))).status_code == 200
