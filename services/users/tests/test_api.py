"""The users API contract (docs/architecture.md) and what we add, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from mythoughts_auth import KeySet, StaticKeySource, TokenVerifier
from servicekit.logs import JsonFormatter


async def test_create_user_returns_the_books_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/admin/users/", data={"username": "bruce", "password": "s3cret"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "creation"}
    assert body["username"] == "bruce"
    assert isinstance(body["id"], int)
    assert datetime.fromisoformat(body["creation"]).utcoffset() is not None
    assert "s3cret" not in response.text


@pytest.mark.parametrize(
    "username", ["Mary O'Neil", "x", "a" * 50, "José-María (admin)!", "李小龍"]
)
async def test_usernames_with_spaces_punctuation_and_unicode(users: Any, username: str) -> None:
    created = await users.create(username, "pw")
    assert created["username"] == username
    assert (await users.login(username, "pw")).status_code == 200


async def test_login_form_and_json_give_a_verifiable_token(
    client: httpx.AsyncClient, users: Any, keys_dir: Any
) -> None:
    await users.create("bruce", "bruce-pw")
    form = await client.post("/api/login/", data={"username": "bruce", "password": "bruce-pw"})
    as_json = await client.post("/api/login/", json={"username": "bruce", "password": "bruce-pw"})
    for response in (form, as_json):
        assert response.status_code == 200
        assert set(response.json()) == {"Authorized"}
    token = form.json()["Authorized"].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == "test-key-1"
    # The token library (what every other service uses) accepts it with the published JWKS.
    jwks = (await client.get("/.well-known/jwks.json")).json()
    verifier = TokenVerifier(
        StaticKeySource(KeySet.from_jwks(jwks)), issuer="mythoughts-users", audience="mythoughts"
    )
    assert (await verifier.verify(token)).username == "bruce"


async def test_wrong_password_and_unknown_user_are_the_same_401(
    client: httpx.AsyncClient, users: Any
) -> None:
    await users.create("bruce", "right")
    wrong = await users.login("bruce", "wrong")
    unknown = await users.login("nobody", "right")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "wrong username or password"
    assert wrong.headers["content-type"] == "application/problem+json"


async def test_duplicate_username_is_409_and_keeps_the_first(
    client: httpx.AsyncClient, users: Any
) -> None:
    first = await users.create("bruce", "first")
    again = await client.post("/admin/users/", json={"username": "bruce", "password": "second"})
    assert again.status_code == 409
    assert "taken" in again.json()["detail"]
    assert (await users.login("bruce", "first")).status_code == 200
    assert (await users.login("bruce", "second")).status_code == 401
    assert first["id"] > 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "pw"}, "username"),
        ({"username": "bruce"}, "password"),
        ({"username": "", "password": "pw"}, "username"),
        ({"username": "   ", "password": "pw"}, "username"),
        ({"username": "a" * 51, "password": "pw"}, "username"),
        ({"username": "tab\there", "password": "pw"}, "username"),
        ({"username": "bell\x07", "password": "pw"}, "username"),
        ({"username": "bruce", "password": ""}, "password"),
        ({"username": ["list"], "password": "pw"}, "username"),
    ],
)
async def test_bad_user_input_is_400_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, users: Any, body: dict[str, Any], field: str
) -> None:
    await users.create("existing", "pw")
    response = await client.post("/admin/users/", json=body)
    assert response.status_code == 400
    problem = response.json()
    assert problem["status"] == 400
    assert [error["field"] for error in problem["errors"]] == [field]
    assert field in problem["detail"]
    # nothing stored was lost, nothing new was stored
    assert (await users.login("existing", "pw")).status_code == 200
    assert (await users.login(str(body.get("username")), "pw")).status_code in (400, 401)


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"", "application/json", 400),
        (b"username=a&password=b", "text/plain", 415),
    ],
)
async def test_malformed_bodies_get_a_readable_4xx(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int
) -> None:
    response = await client.post(
        "/api/login/", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status
    assert response.json()["detail"]


async def test_me_returns_the_logged_in_user(client: httpx.AsyncClient, users: Any) -> None:
    created = await users.create("stephen", "pw")
    token = await users.token("stephen", "pw")
    response = await client.get("/api/me/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == created
    anonymous = await client.get("/api/me/")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


async def test_deleted_user_can_no_longer_log_in_or_use_its_token(
    client: httpx.AsyncClient, users: Any
) -> None:
    created = await users.create("temp", "pw")
    token = await users.token("temp", "pw")
    assert (await client.delete(f"/admin/users/{created['id']}/")).status_code == 204
    assert (await client.delete(f"/admin/users/{created['id']}/")).status_code == 404
    assert (await users.login("temp", "pw")).status_code == 401
    me = await client.get("/api/me/", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401


@pytest.mark.parametrize("user_id", ["abc", "0", "-1", "99999999999999999999"])
async def test_bad_ids_are_400_not_500(client: httpx.AsyncClient, user_id: str) -> None:
    response = await client.delete(f"/admin/users/{user_id}/")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "user_id"


async def test_oauth2_password_grant(client: httpx.AsyncClient, users: Any) -> None:
    await users.create("bruce", "pw")
    ok = await client.post(
        "/api/token", data={"grant_type": "password", "username": "bruce", "password": "pw"}
    )
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    me = await client.get("/api/me/", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["username"] == "bruce"
    wrong = await client.post("/api/token", data={"username": "bruce", "password": "nope"})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"


async def test_oauth2_password_grant_reads_the_form_as_utf8(
    client: httpx.AsyncClient, users: Any
) -> None:
    """curl -d sends UTF-8 unescaped: /api/token read it as Latin-1 ("JÃ¶rg", no such user)
    while /api/login/ read it right; bytes that are not UTF-8 are a 400 saying so."""
    await users.create("Jörg", "pässword")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    raw = "grant_type=password&username=Jörg&password=pässword".encode()
    ok = await client.post("/api/token", content=raw, headers=form)
    assert ok.status_code == 200, ok.text
    latin1 = await client.post("/api/token", content=raw.decode().encode("latin-1"), headers=form)
    assert latin1.status_code == 400
    assert "not UTF-8" in latin1.json()["detail"]


async def test_signup_is_off_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/features/")).json() == {"signup": False}
    response = await client.post("/api/users/", json={"username": "new", "password": "long-pw-1"})
    assert response.status_code == 403
    assert "disabled" in response.json()["detail"]


async def test_signup_when_enabled(start_app: Any, make_settings: Any) -> None:
    client = await start_app(make_settings(signup_enabled=True))
    assert (await client.get("/api/features/")).json() == {"signup": True}
    short = await client.post("/api/users/", json={"username": "new", "password": "short"})
    assert short.status_code == 400
    assert short.json()["errors"][0]["field"] == "password"
    created = await client.post("/api/users/", data={"username": "new", "password": "long-pw-1"})
    assert created.status_code == 201
    assert created.json()["username"] == "new"
    dup = await client.post("/api/users/", data={"username": "new", "password": "long-pw-2"})
    assert dup.status_code == 409


async def test_signup_flag_from_a_file_targets_listed_users(
    start_app: Any, make_settings: Any, tmp_path: Path
) -> None:
    """The `signup` flag of FEATURE_FLAGS_FILE overrides SIGNUP_ENABLED: here on for one
    invited username only, although the environment switch says on for everybody."""
    flags = tmp_path / "flags.yaml"
    flags.write_text('flags:\n  signup: {users: ["Mary O\'Neil"]}\n', encoding="utf-8")
    client = await start_app(make_settings(signup_enabled=True, feature_flags_file=flags))
    assert (await client.get("/api/features/")).json() == {"signup": False}
    invited = await client.get("/api/features/", params={"username": "Mary O'Neil"})
    assert invited.json() == {"signup": True}
    refused = await client.post("/api/users/", json={"username": "bob", "password": "long-pw-1"})
    assert refused.status_code == 403
    created = await client.post(
        "/api/users/", json={"username": "Mary O'Neil", "password": "long-pw-1"}
    )
    assert created.status_code == 201, created.text


async def test_signup_enabled_stays_the_default_of_the_flag(
    start_app: Any, make_settings: Any, tmp_path: Path
) -> None:
    flags = tmp_path / "flags.yaml"
    flags.write_text("flags:\n  other: {enabled: true}\n", encoding="utf-8")
    client = await start_app(make_settings(signup_enabled=True, feature_flags_file=flags))
    created = await client.post("/api/users/", json={"username": "new", "password": "long-pw-1"})
    assert created.status_code == 201, created.text


async def test_openapi_docs_are_titled_users_backend(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert schema["info"]["title"] == "Users Backend API"
    assert schema["info"]["version"] == "0.1.0"
    assert (await client.get("/docs")).status_code == 200


async def test_version_endpoint(client: httpx.AsyncClient) -> None:
    assert (await client.get("/admin/version/")).json() == {"version": "0.1.0", "commit": "test"}


async def test_password_and_token_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture, client: httpx.AsyncClient, users: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    await users.create("bruce", "hunter2-password")
    token = await users.token("bruce", "hunter2-password")
    await client.get("/api/me/", headers={"Authorization": f"Bearer {token}"})
    await users.login("bruce", "wrong-password-xyz")
    formatter = JsonFormatter("users", "test")
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert '"route":"/api/login/"' in logged  # the access log did run
    for secret in ("hunter2-password", "wrong-password-xyz", token, token[:40]):
        assert secret not in logged


async def test_logout_revokes_that_token_only(client: httpx.AsyncClient, users: Any) -> None:
    await users.create("bruce", "pw")
    token, other = await users.token("bruce", "pw"), await users.token("bruce", "pw")
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/me/", headers=bearer)).status_code == 200
    assert (await client.post("/api/logout/", headers=bearer)).status_code == 204
    refused = await client.get("/api/me/", headers=bearer)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "token revoked"
    assert (await client.post("/api/logout/", headers=bearer)).status_code == 401
    me = await client.get("/api/me/", headers={"Authorization": f"Bearer {other}"})
    assert me.status_code == 200  # the same user's other session goes on
    assert (await client.post("/api/logout/")).status_code == 401


async def test_a_deleted_name_is_never_given_to_a_new_account(
    client: httpx.AsyncClient, users: Any
) -> None:
    # Before: re-registering the name made a new account that owned the old one's thoughts.
    created = await users.create("temp", "pw")
    assert (await client.delete(f"/admin/users/{created['id']}/")).status_code == 204
    again = await client.post("/admin/users/", json={"username": "temp", "password": "new"})
    assert again.status_code == 409
    look_alike = await client.post("/admin/users/", json={"username": "TEMP", "password": "x"})
    assert look_alike.status_code == 409
    assert (await users.login("temp", "new")).status_code == 401
