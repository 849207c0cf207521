"""The book's contract (docs/architecture.md), endpoint by endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt

from testkit.tokens import TokenSigner, generate_private_key


def is_utc_iso8601(value: str) -> bool:
    parsed = datetime.fromisoformat(value)
    return parsed.utcoffset() == timedelta(0)


async def test_post_json_returns_201_with_the_new_thought(
    client: httpx.AsyncClient, auth: Any, count_rows: Any
) -> None:
    before = datetime.now(UTC)
    response = await client.post(
        "/api/me/thoughts/", json={"text": "My first thought"}, headers=auth("bruce")
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "username", "text", "timestamp"}
    assert isinstance(body["id"], int)
    assert body["username"] == "bruce"
    assert body["text"] == "My first thought"
    assert is_utc_iso8601(body["timestamp"])
    assert before - timedelta(seconds=5) <= datetime.fromisoformat(body["timestamp"])
    assert await count_rows() == 1


async def test_post_form_encoded_as_the_books_clients_do(
    client: httpx.AsyncClient, auth: Any
) -> None:
    # The book's clients send the username too; the token decides the author.
    response = await client.post(
        "/api/me/thoughts/",
        data={"text": "Form thought", "username": "mallory"},
        headers=auth("Mary O'Neil"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["username"] == "Mary O'Neil"
    assert response.json()["text"] == "Form thought"


async def test_username_in_a_json_body_is_ignored(client: httpx.AsyncClient, auth: Any) -> None:
    response = await client.post(
        "/api/me/thoughts/", json={"text": "hi", "username": "mallory"}, headers=auth("bruce")
    )
    assert response.status_code == 201
    assert response.json()["username"] == "bruce"


async def test_text_is_trimmed_and_counted_after_trimming(
    client: httpx.AsyncClient, auth: Any, assert_problem: Any
) -> None:
    padded = "\n\t " + "x" * 250 + " \u3000\n"
    response = await client.post("/api/me/thoughts/", json={"text": padded}, headers=auth("ann"))
    assert response.status_code == 201, response.text
    assert response.json()["text"] == "x" * 250
    too_long = await client.post("/api/me/thoughts/", json={"text": "x" * 251}, headers=auth("ann"))
    assert_problem(too_long, 400, "text")
    assert "250" in too_long.json()["detail"]


async def test_unicode_text_round_trips(client: httpx.AsyncClient, auth: Any) -> None:
    text = "Ünïcødé 😀 ß İstanbul — \"quotes\" 'and' \\ back%slash_"
    created = (
        await client.post("/api/me/thoughts/", json={"text": text}, headers=auth("ann"))
    ).json()
    fetched = (await client.get(f"/api/thoughts/{created['id']}/")).json()
    assert fetched == created
    assert fetched["text"] == text


async def test_my_thoughts_lists_only_mine_in_id_order(
    client: httpx.AsyncClient, auth: Any, post_thoughts: Any
) -> None:
    mine = await post_thoughts("bruce", ["one", "two"])
    await post_thoughts("alice", ["other"])
    mine += await post_thoughts("bruce", ["three"])
    response = await client.get("/api/me/thoughts/", headers=auth("bruce"))
    assert response.status_code == 200
    assert response.json() == mine
    assert "link" not in response.headers
    assert (await client.get("/api/me/thoughts/", headers=auth("nobody"))).json() == []


async def test_list_all_thoughts_in_id_order(client: httpx.AsyncClient, post_thoughts: Any) -> None:
    created = await post_thoughts("bruce", ["a"]) + await post_thoughts("alice", ["b", "c"])
    response = await client.get("/api/thoughts/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == created


async def test_search_is_a_case_insensitive_substring(
    client: httpx.AsyncClient, post_thoughts: Any
) -> None:
    created = await post_thoughts(
        "bruce",
        ["Docker is GREAT", "kubernetes too", "STRASSE", "Straße", "100% sure", "about_docker"],
    )
    ids = {thought["text"]: thought["id"] for thought in created}

    async def search(query: str) -> list[str]:
        response = await client.get("/api/thoughts/", params={"search": query})
        assert response.status_code == 200, response.text
        return [thought["text"] for thought in response.json()]

    assert await search("docker") == ["Docker is GREAT", "about_docker"]
    assert await search("great") == ["Docker is GREAT"]
    assert await search("straße") == ["STRASSE", "Straße"]
    assert await search("%") == ["100% sure"]
    assert await search("_") == ["about_docker"]
    assert await search("nothing like this") == []
    assert await search("") == list(ids)  # the book: an empty search is no search


async def test_get_one_thought_and_404(client: httpx.AsyncClient, post_thoughts: Any) -> None:
    [created] = await post_thoughts("bruce", ["just one"])
    response = await client.get(f"/api/thoughts/{created['id']}/")
    assert response.status_code == 200
    assert response.json() == created
    missing = await client.get(f"/api/thoughts/{created['id'] + 1000}/")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert str(created["id"] + 1000) in missing.json()["detail"]


async def test_admin_delete_204_then_404(
    client: httpx.AsyncClient, post_thoughts: Any, count_rows: Any
) -> None:
    [created] = await post_thoughts("bruce", ["to delete"])
    response = await client.delete(f"/admin/thoughts/{created['id']}/")
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/api/thoughts/{created['id']}/")).status_code == 404
    assert await count_rows() == 0
    again = await client.delete(f"/admin/thoughts/{created['id']}/")
    assert again.status_code == 404


async def test_admin_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/version/")
    assert response.status_code == 200
    assert response.json() == {"version": "0.1.0", "commit": "test"}


async def test_ready_and_docs(client: httpx.AsyncClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    schema = (await client.get("/openapi.json")).json()
    assert schema["info"]["title"] == "Thoughts Backend API"
    assert {"/api/me/thoughts/", "/api/thoughts/", "/api/thoughts/{thought_id}/"} <= set(
        schema["paths"]
    )
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "Thoughts Backend API" in docs.text


async def test_business_metrics(client: httpx.AsyncClient, post_thoughts: Any) -> None:
    await post_thoughts("bruce", ["metric one", "metric two"])
    await client.get("/api/thoughts/", params={"search": "metric"})
    await client.get("/api/thoughts/", params={"search": "me"})
    text = (await client.get("/metrics")).text
    assert "thoughts_created_total 2.0" in text
    assert 'thoughts_searches_total{strategy="index"} 1.0' in text
    assert 'thoughts_searches_total{strategy="scan"} 1.0' in text
    assert 'http_requests_total{method="POST",route="/api/me/thoughts/",status="201"} 2.0' in text


class TestAuthentication:
    async def test_401_without_a_token(
        self, client: httpx.AsyncClient, assert_problem: Any
    ) -> None:
        for method, path in [
            ("GET", "/api/me/thoughts/"),
            ("POST", "/api/me/thoughts/"),
            ("DELETE", "/api/me/thoughts/1/"),
        ]:
            response = await client.request(method, path, json={"text": "x"})
            assert_problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")

    async def test_401_with_a_bad_token(
        self,
        client: httpx.AsyncClient,
        token_signer: TokenSigner,
        count_rows: Any,
        assert_problem: Any,
    ) -> None:
        tokens = {
            "garbage": "not.a.token",
            "expired": token_signer.sign("bruce", exp=1_000_000, iat=999_000),
            "wrong audience": token_signer.sign("bruce", aud="someone-else"),
            "wrong issuer": token_signer.sign("bruce", iss="evil"),
            "other key": token_signer.sign("bruce", key=generate_private_key()),
            "unknown kid": token_signer.sign("bruce", kid="nope"),
            "HS256, same key id": jwt.encode(
                {"username": "bruce", "iss": "mythoughts-users", "aud": "mythoughts"},
                "a-shared-secret-that-is-long-enough",
                algorithm="HS256",
                headers={"kid": token_signer.kid},
            ),
            "alg none": jwt.encode({"username": "bruce"}, "", algorithm="none"),
        }
        for case, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"}
            for response in (
                await client.post("/api/me/thoughts/", json={"text": "x"}, headers=headers),
                await client.get("/api/me/thoughts/", headers=headers),
                await client.delete("/api/me/thoughts/1/", headers=headers),
            ):
                assert_problem(response, 401)
                assert 'error="invalid_token"' in response.headers["www-authenticate"], case
        assert await count_rows() == 0

    async def test_token_username_longer_than_allowed_is_refused(
        self, client: httpx.AsyncClient, token_signer: TokenSigner, assert_problem: Any
    ) -> None:
        headers = {"Authorization": f"Bearer {token_signer.sign('x' * 51)}"}
        response = await client.post("/api/me/thoughts/", json={"text": "x"}, headers=headers)
        assert_problem(response, 403)
