"""POST_QUEUE_LIMIT on a real server: posts beyond the bound get a 503 at once, none is lost.

The server runs with one worker and a bound of LIMIT posts. The test holds the lock every post
must take before its commit, as another writer would (SQLite: the workers' writers lock file;
PostgreSQL: the insert-order advisory lock), so that posts queue. Of LIMIT + EXTRA posts sent
together, LIMIT wait and EXTRA are refused with 503 problem+json and Retry-After while the lock is
still held; without the bound all of them would wait (the test would see no 503 and fail). Once
the lock is released, every waiting post is stored and acknowledged, every 201 is a row, no
refused post is, and the places are free again.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from testkit import ServiceProcess
from thoughts_service.inserts import _INSERT_ORDER_LOCK

LIMIT = 3
EXTRA = 5


@contextmanager
def commits_held(database_url: str) -> Iterator[None]:
    """No post of the server can commit while this holds the lock its commits wait for."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        lock = os.open(f"{url.database}-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)  # releases the lock
        return
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (_INSERT_ORDER_LOCK,))
        yield


def stored_texts(database_url: str) -> list[str]:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(str(url.database)) as connection:
            return [row[0] for row in connection.execute("SELECT text FROM thoughts")]
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as connection:
        return [row[0] for row in connection.execute("SELECT text FROM thoughts").fetchall()]


@pytest.fixture
def server(database_url: str, public_keys_dir: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess.serving(
        "thoughts",
        {
            "DATABASE_URL": database_url,
            "AUTH_PUBLIC_KEYS_DIR": str(public_keys_dir),
            "WORKERS": "1",  # the bound is per worker process
            "POST_QUEUE_LIMIT": str(LIMIT),
            "LOG_LEVEL": "WARNING",
        },
        tmp_path / "thoughts.log",
    ).start()
    yield process
    assert process.stop() == 0, process.logs()


async def test_posts_beyond_the_bound_get_503_at_once_and_no_acknowledged_post_is_lost(
    server: ServiceProcess, database_url: str, auth: Callable[[str], dict[str, str]]
) -> None:
    headers = auth("queued")
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        first = await post(client, "before the lock")  # opens the writer (and its lock file)
        assert first.status_code == 201, first.text

        texts = [f"queued post {i}" for i in range(LIMIT + EXTRA)]
        with commits_held(database_url):
            posts = [asyncio.create_task(post(client, text)) for text in texts]
            refused: list[httpx.Response] = []
            # Every refusal comes while no post can commit: the bound answers, not the database.
            try:
                for finished in asyncio.as_completed(posts, timeout=20):
                    response = await finished
                    assert response.status_code == 503, response.text
                    refused.append(response)
                    if len(refused) == EXTRA:
                        break
            except TimeoutError:
                for task in posts:
                    task.cancel()
                pytest.fail(f"{len(refused)} of {LIMIT + EXTRA} refused: the queue is unbounded")
            waiting = [task for task in posts if not task.done()]
            assert len(waiting) == LIMIT
        answers: list[httpx.Response] = await asyncio.gather(*posts)

    for response in refused:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["retry-after"] == "1"
        body: dict[str, Any] = response.json()
        assert body["status"] == 503
        assert f"{LIMIT} posts are already waiting" in body["detail"]
    accepted = [r.json()["text"] for r in answers if r.status_code == 201]
    refused_texts = set(texts) - set(accepted)
    assert len(accepted) == LIMIT, [r.status_code for r in answers]
    stored = stored_texts(database_url)
    assert sorted(stored) == sorted(["before the lock", *accepted])
    assert not refused_texts & set(stored)

    # The places were given back: the next posts are stored.
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        again = await asyncio.gather(*(post(client, f"after {i}") for i in range(LIMIT)))
    assert [r.status_code for r in again] == [201] * LIMIT


async def post(client: httpx.AsyncClient, text: str) -> httpx.Response:
    return await client.post("/api/me/thoughts/", json={"text": text})
