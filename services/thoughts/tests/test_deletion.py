"""Deleting one's own thought: the owner may, others may not, and absent is absent."""

from __future__ import annotations

from typing import Any

import httpx


async def test_owner_deletes_their_thought(
    client: httpx.AsyncClient, post_thoughts: Any, auth: Any, count_rows: Any
) -> None:
    [mine, kept] = await post_thoughts("bruce", ["delete me", "keep me"])
    response = await client.delete(f"/api/me/thoughts/{mine['id']}/", headers=auth("bruce"))
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/api/thoughts/{mine['id']}/")).status_code == 404
    assert (await client.get("/api/me/thoughts/", headers=auth("bruce"))).json() == [kept]
    assert await count_rows() == 1
    # The search index forgets it too.
    found = await client.get("/api/thoughts/", params={"search": "delete me"})
    assert found.json() == []


async def test_someone_elses_thought_is_403_and_stays(
    client: httpx.AsyncClient, post_thoughts: Any, auth: Any, count_rows: Any, assert_problem: Any
) -> None:
    [theirs] = await post_thoughts("alice", ["alice's thought"])
    response = await client.delete(f"/api/me/thoughts/{theirs['id']}/", headers=auth("bruce"))
    assert_problem(response, 403)
    assert (await client.get(f"/api/thoughts/{theirs['id']}/")).json() == theirs
    assert await count_rows() == 1


async def test_absent_thought_is_404(
    client: httpx.AsyncClient, post_thoughts: Any, auth: Any, count_rows: Any, assert_problem: Any
) -> None:
    [existing] = await post_thoughts("bruce", ["still here"])
    absent = existing["id"] + 1
    response = await client.delete(f"/api/me/thoughts/{absent}/", headers=auth("bruce"))
    assert_problem(response, 404)
    assert await count_rows() == 1
    # Deleting twice: the second time it is absent.
    first = await client.delete(f"/api/me/thoughts/{existing['id']}/", headers=auth("bruce"))
    assert first.status_code == 204
    second = await client.delete(f"/api/me/thoughts/{existing['id']}/", headers=auth("bruce"))
    assert_problem(second, 404)


async def test_usernames_are_compared_exactly(
    client: httpx.AsyncClient, post_thoughts: Any, auth: Any, count_rows: Any
) -> None:
    [thought] = await post_thoughts("Mary O'Neil", ["mine"])
    for impostor in ("mary o'neil", "Mary O'Neil ", "Mary"):
        response = await client.delete(f"/api/me/thoughts/{thought['id']}/", headers=auth(impostor))
        assert response.status_code == 403, impostor
    assert await count_rows() == 1
    response = await client.delete(
        f"/api/me/thoughts/{thought['id']}/", headers=auth("Mary O'Neil")
    )
    assert response.status_code == 204
