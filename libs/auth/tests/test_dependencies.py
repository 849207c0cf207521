"""The FastAPI side: Authorization header parsing, 401 answers, OptionalUser, OpenAPI."""

import httpx
import pytest
from fastapi import FastAPI

from mythoughts_auth import CurrentUser, InvalidToken, parse_bearer

REALM_CHALLENGE = 'Bearer realm="mythoughts"'


def invalid_token_challenge(reason):
    return f'Bearer error="invalid_token", error_description="{reason}"'


@pytest.mark.parametrize(
    "header",
    ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER abc.def.ghi", "Bearer   abc.def.ghi "],
)
def test_parse_bearer_returns_the_token(header):
    assert parse_bearer(header) == "abc.def.ghi"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(None, "missing authorization header", id="missing"),
        pytest.param("", "missing authorization header", id="empty-header"),
        pytest.param("Basic dXNlcjpwYXNz", "authorization scheme must be Bearer", id="basic"),
        pytest.param("abc.def.ghi", "authorization scheme must be Bearer", id="no-scheme"),
        pytest.param("Bearer", "missing bearer token", id="no-token"),
        pytest.param("Bearer    ", "missing bearer token", id="blank-token"),
        pytest.param("Bearer abc def", "malformed bearer token", id="space-in-token"),
        pytest.param("Bearer abc\tdef", "malformed bearer token", id="tab-in-token"),
        pytest.param("Bearer abc,def", "malformed bearer token", id="not-b64token"),
    ],
)
def test_parse_bearer_refuses_bad_headers(header, reason):
    with pytest.raises(InvalidToken) as excinfo:
        parse_bearer(header)

    assert excinfo.value.reason == reason


async def test_good_token_gets_200_and_the_username(client, tokens):
    response = await client.get("/me", headers={"Authorization": f"Bearer {tokens.sign()}"})

    assert response.status_code == 200
    assert response.json() == {"username": "Mary O'Neil"}


async def test_missing_header_gets_401_with_a_plain_challenge(client):
    response = await client.get("/me")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == REALM_CHALLENGE
    assert response.json() == {"detail": "missing authorization header"}


async def test_wrong_scheme_gets_401_with_a_plain_challenge(client):
    # RFC 6750 3.1: credentials of another scheme get no error code, just the challenge.
    response = await client.get("/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == REALM_CHALLENGE
    assert response.json() == {"detail": "authorization scheme must be Bearer"}


async def test_bad_token_gets_401_with_reason(client, tokens, build, reason):
    token = build(tokens)

    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == invalid_token_challenge(reason)
    assert response.json() == {"detail": reason}
    assert token not in response.text


async def test_optional_user_is_none_without_a_header(client):
    response = await client.get("/maybe")

    assert response.status_code == 200
    assert response.json() == {"username": None}


async def test_optional_user_is_the_username_with_a_good_token(client, tokens):
    response = await client.get("/maybe", headers={"Authorization": f"Bearer {tokens.sign()}"})

    assert response.status_code == 200
    assert response.json() == {"username": "Mary O'Neil"}


async def test_optional_user_still_refuses_a_bad_token(client, tokens):
    token = tokens.tampered(username="admin")

    response = await client.get("/maybe", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == invalid_token_challenge(
        "signature verification failed"
    )
    assert response.json() == {"detail": "signature verification failed"}


async def test_optional_user_refuses_a_header_of_another_scheme(client):
    response = await client.get("/maybe", headers={"Authorization": "Basic dXNlcjpwYXNz"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == REALM_CHALLENGE


def test_openapi_documents_the_bearer_scheme(app):
    schema = app.openapi()

    assert schema["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "RS256 access token issued by the users service (POST /api/login/).",
    }
    assert schema["paths"]["/me"]["get"]["security"] == [{"HTTPBearer": []}]
    assert schema["paths"]["/maybe"]["get"]["security"] == [{"HTTPBearer": []}]
    # The dependency's plumbing must not leak into the documented parameters.
    assert "parameters" not in schema["paths"]["/me"]["get"]


async def test_app_without_a_verifier_is_a_server_error_not_a_401(tokens):
    app = FastAPI()

    @app.get("/me")
    async def me(username: CurrentUser) -> str:
        return username

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with pytest.raises(RuntimeError, match="token_verifier"):
            await client.get("/me", headers={"Authorization": f"Bearer {tokens.sign()}"})
