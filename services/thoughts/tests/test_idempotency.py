"""POST /api/me/thoughts/ with an Idempotency-Key: safe to repeat (issue 14), on both databases.

A client that did not learn whether its post was stored (a timeout, a lost connection, a 503
from a proxy) sends it again with the same key; the thought must be stored once.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest


def keyed(auth, username: str, key: str) -> dict[str, str]:
    return {**auth(username), "Idempotency-Key": key}


async def test_a_repeated_post_with_the_same_key_is_stored_once(client, auth, count_rows):
    key = str(uuid.uuid4())
    first = await client.post(
        "/api/me/thoughts/", json={"text": "only once"}, headers=keyed(auth, "bruce", key)
    )
    again = await client.post(
        "/api/me/thoughts/", json={"text": "only once"}, headers=keyed(auth, "bruce", key)
    )

    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await count_rows() == 1


async def test_posts_with_the_same_key_at_the_same_time_store_one_thought(client, auth, count_rows):
    key = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(
            client.post(
                "/api/me/thoughts/", json={"text": "at once"}, headers=keyed(auth, "bruce", key)
            )
            for _ in range(6)
        )
    )

    assert [answer.status_code for answer in answers] == [201] * 6
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert await count_rows() == 1


async def test_the_same_key_with_another_text_is_refused(client, auth, count_rows, assert_problem):
    key = str(uuid.uuid4())
    first = await client.post(
        "/api/me/thoughts/", json={"text": "first"}, headers=keyed(auth, "bruce", key)
    )
    other = await client.post(
        "/api/me/thoughts/", json={"text": "second"}, headers=keyed(auth, "bruce", key)
    )

    assert first.status_code == 201
    assert_problem(other, 422)
    assert await count_rows() == 1


async def test_keys_belong_to_their_author_and_posts_without_one_are_not_deduplicated(
    client, auth, count_rows
):
    key = str(uuid.uuid4())
    for username in ("bruce", "stephen"):
        answer = await client.post(
            "/api/me/thoughts/", json={"text": "same"}, headers=keyed(auth, username, key)
        )
        assert answer.status_code == 201
        assert "idempotent-replayed" not in answer.headers
    for _ in range(2):
        answer = await client.post("/api/me/thoughts/", json={"text": "same"}, headers=auth("x"))
        assert answer.status_code == 201
    assert await count_rows() == 4


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="too-long"),
        pytest.param("a b", id="space"),
    ],
)
async def test_a_malformed_key_is_a_400_and_nothing_is_stored(
    client, auth, count_rows, assert_problem, key
):
    answer = await client.post(
        "/api/me/thoughts/", json={"text": "t"}, headers=keyed(auth, "bruce", key)
    )

    assert_problem(answer, 400)
    assert await count_rows() == 0
