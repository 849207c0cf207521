"""Readiness under load: busy is not unready, cut off is (servicekit.readiness).

A real server process of the example service, on SQLite and on PostgreSQL, with a request pool of
two connections. The test takes the notes table's write lock on the database itself, then sends
more note posts than the pool has connections: each INSERT waits for the lock on a pooled
connection, so every connection is busy with a statement and more requests queue for one, as
under a saturating load. /readyz must answer 200 within a second all the while (the old probe
waited for a pooled connection and answered 503 after 0.8 s, which took every server of a route
out of the gateway). With the database black-holed or refusing connections, on the other hand,
/readyz must answer 503 within a second even while the pool is busy.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from testkit import DatabaseFactory, ServiceProcess
from testkit.databases import need, postgres_available
from testkit.faults import FaultProxy

POOL_SIZE = 2
# What "within a second" means for a probe seen from its client (the kit's deadline is 0.8 s).
READYZ_BOUND = 1.0
# Long enough that the requests waiting for the lock hold their connections for the whole test
# (SQLite's own lock wait, busy_timeout, is 5 s: the test releases the lock well before).
SERVICE_ENV = {
    "DB_POOL_SIZE": str(POOL_SIZE),
    "DB_ACQUIRE_TIMEOUT_SECONDS": "30",
    "DB_QUERY_TIMEOUT_SECONDS": "30",
}


@contextmanager
def notes_locked(database_url: str) -> Iterator[None]:
    """Holds the notes table's write lock, taken on the database directly (never through the
    service or a proxy), until the block ends."""
    url = urlsplit(database_url)
    if url.scheme.startswith("sqlite"):
        sqlite = sqlite3.connect(url.path[1:], isolation_level=None)
        sqlite.execute("BEGIN IMMEDIATE")  # SQLite's write lock, for the whole file
        try:
            yield
        finally:
            sqlite.execute("ROLLBACK")
            sqlite.close()
        return
    with psycopg.connect(database_url.replace("+asyncpg", ""), connect_timeout=5) as postgres:
        postgres.execute("LOCK TABLE notes IN EXCLUSIVE MODE")  # reads pass, writes wait
        try:
            yield
        finally:
            postgres.rollback()


@pytest.fixture
def start_service(
    example_process: Callable[..., ServiceProcess],
) -> Callable[[str], ServiceProcess]:
    """`start_service(database_url)`: the example service as a real server process."""

    def start(database_url: str) -> ServiceProcess:
        return example_process("0", env={"DATABASE_URL": database_url, **SERVICE_ENV})

    return start


@pytest.fixture
def postgres_url(database_factory: DatabaseFactory, example: Any) -> str:
    reason = postgres_available()
    if reason:
        need(reason)
    return database_factory.fresh("postgresql", example.MIGRATIONS_DIR)


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[FaultProxy]:
    target = urlsplit(postgres_url)
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 5432) as fault_proxy:
        yield fault_proxy


async def timed_readyz(client: httpx.AsyncClient) -> tuple[int, float, dict[str, Any]]:
    started = time.monotonic()
    response = await client.get("/readyz")
    return response.status_code, time.monotonic() - started, response.json()


async def pool_in_use(client: httpx.AsyncClient) -> int:
    """The request pool's busy connections, as the service's own /metrics says."""
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith('db_pool_connections{pool="sqlalchemy",state="in_use"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    raise AssertionError("no db_pool_connections gauge for the sqlalchemy pool")


@asynccontextmanager
async def pool_saturated(
    client: httpx.AsyncClient, database_url: str
) -> AsyncIterator[asyncio.Future[list[Any]]]:
    """Every connection of the service's request pool busy with an INSERT that waits for the
    lock, and more posts waiting for a connection; yields the posts (answered after the block)."""
    with notes_locked(database_url):
        posts = asyncio.gather(
            *(
                client.post("/db/notes", json={"text": f"busy {n}"}, timeout=60)
                for n in range(POOL_SIZE + 2)
            ),
            return_exceptions=True,
        )
        deadline = time.monotonic() + 30  # a loaded machine may take a while to send them
        while await pool_in_use(client) < POOL_SIZE:
            assert time.monotonic() < deadline, "the posts never took every pooled connection"
            assert not posts.done(), await posts
            await asyncio.sleep(0.05)
        yield posts
    # The lock is released: the posts go through (or fail, after a fault) and are collected.
    await asyncio.wait({posts}, timeout=30)


async def test_readyz_stays_ready_while_every_pooled_connection_is_busy(
    start_service: Callable[[str], ServiceProcess], migrated_url: str
) -> None:
    service = start_service(migrated_url)
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        assert (await client.post("/db/notes", json={"text": "warm"})).status_code == 201

        probes = []
        async with pool_saturated(client, migrated_url) as posts:
            # Longer than the old probe's 0.8 s wait for a pooled connection, several times.
            for _ in range(5):
                probes.append(await timed_readyz(client))
                await asyncio.sleep(0.3)
            assert await pool_in_use(client) == POOL_SIZE
            assert not posts.done()
        answers = await posts

    print(f"[busy pool] probes {[(status, round(seconds, 3)) for status, seconds, _ in probes]}")
    for status, seconds, body in probes:
        assert status == 200, body
        assert seconds < READYZ_BOUND, (seconds, body)
        assert body["checks"] == {"database": "ok", "migrations": "ok"}
    # Busy, not broken: every post went through once the lock was released.
    assert [getattr(answer, "status_code", answer) for answer in answers] == [201] * (
        POOL_SIZE + 2
    ), service.logs()


@pytest.mark.parametrize("fault", ["black_hole", "refuse"])
async def test_readyz_goes_unready_within_a_second_when_the_busy_database_is_cut_off(
    start_service: Callable[[str], ServiceProcess],
    postgres_url: str,
    proxy: FaultProxy,
    fault: str,
) -> None:
    service = start_service(proxy.route(postgres_url))
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        assert (await client.post("/db/notes", json={"text": "warm"})).status_code == 201
        assert (await client.get("/readyz")).status_code == 200

        async with pool_saturated(client, postgres_url):
            assert (await timed_readyz(client))[0] == 200
            getattr(proxy, fault)()
            status, seconds, body = await timed_readyz(client)
            proxy.restore()
        ended = time.monotonic()
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() - ended < 30, "readiness did not come back after the fault"
            await asyncio.sleep(0.1)
        recovery = time.monotonic() - ended

    checks = body["checks"]
    print(f"[busy pool, {fault}] readyz {status} in {seconds:.3f}s {checks}; {recovery:.2f}s")
    assert status == 503, body
    assert seconds < READYZ_BOUND, (seconds, body)
    expected = "no answer within 0.8s" if fault == "black_hole" else "unreachable: "
    assert body["checks"]["database"].startswith(expected), body


async def test_a_probe_slower_than_its_deadline_passes_while_requests_are_answered(
    start_app: Callable[..., Any], make_settings: Callable[..., Any], postgres_url: str
) -> None:
    """The rule's third point, in process: the probe's read waits (the test locks the migration
    table, which only the probe reads) while the requests' statements keep being answered."""
    client = await start_app(make_settings(database_url=postgres_url, db_pool_size=POOL_SIZE))
    assert (await client.get("/readyz")).status_code == 200  # the revision, read once

    with psycopg.connect(postgres_url.replace("+asyncpg", ""), connect_timeout=5) as connection:
        connection.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        idle = await timed_readyz(client)

        async def requests() -> None:
            while True:
                assert (await client.post("/db/notes", json={"text": "x"})).status_code == 201
                await asyncio.sleep(0.02)

        answering = asyncio.ensure_future(requests())
        try:
            busy = await timed_readyz(client)
        finally:
            answering.cancel()
        connection.rollback()
    after = await timed_readyz(client)

    print(f"[slow probe] alone {idle[:2]}, beside answered requests {busy[:2]}")
    # Nothing answered while the probe waited: unready, at its deadline.
    assert idle[0] == 503, idle
    assert idle[2]["checks"] == {"database": "no answer within 0.8s"}
    assert idle[1] < READYZ_BOUND, idle
    # Requests answered meanwhile: the database is reachable, only slow to answer the probe.
    assert busy[0] == 200, busy
    assert busy[2]["checks"]["database"].startswith("busy"), busy
    assert busy[2]["checks"]["migrations"] == "ok", busy
    assert busy[1] < READYZ_BOUND, busy
    assert after[0] == 200, after
    assert after[2]["checks"]["database"] == "ok", after


async def test_a_probe_past_its_deadline_keeps_its_connection_for_the_next(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    postgres_url: str,
    proxy: FaultProxy,
) -> None:
    """A read the probe stops waiting for runs on and the next probe waits for it: cancelled,
    it cost its connection, and on a machine where a round trip took the whole deadline every
    next probe opened a new one, took longer still, and was never ready again (the proxy counts
    the connections the service opens)."""
    client = await start_app(make_settings(database_url=proxy.route(postgres_url)))
    assert (await client.get("/readyz")).status_code == 200
    opened = proxy.connections

    with psycopg.connect(postgres_url.replace("+asyncpg", ""), connect_timeout=5) as connection:
        connection.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        late = [await timed_readyz(client) for _ in range(2)]
        connection.rollback()
    deadline = time.monotonic() + 10
    while (answer := await timed_readyz(client))[0] != 200:
        assert time.monotonic() < deadline, answer

    assert [status for status, _, _ in late] == [503, 503], late
    assert all(seconds < READYZ_BOUND for _, seconds, _ in late), late
    assert answer[2]["checks"] == {"database": "ok", "migrations": "ok"}
    assert proxy.connections == opened, "the probe opened a new connection"
