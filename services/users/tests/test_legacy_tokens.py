"""LEGACY_COMPATIBILITY: tokens the book's services accept, and the book's tokens accepted here.

`book_validate` is the book's verifier as its services call it: PyJWT's `decode` with the public
key and no audience, only decode and expiry errors taken as a refusal (anything else, such as
`InvalidAudienceError` or `ImmatureSignatureError`, escapes and is a 500 in the book's service).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from servicekit import ConfigError
from users_service.main import create_app
from users_service.settings import UsersSettings


async def create(client: httpx.AsyncClient, username: str, password: str) -> None:
    response = await client.post("/admin/users/", json={"username": username, "password": password})
    assert response.status_code == 201, response.text


async def token(client: httpx.AsyncClient, username: str, password: str) -> str:
    response = await client.post("/api/login/", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    authorized: str = response.json()["Authorized"]
    return authorized.removeprefix("Bearer ")


def book_validate(header: str, public_key: bytes) -> str | None:
    if not header.startswith("Bearer "):
        return None
    try:
        decoded = jwt.decode(header.removeprefix("Bearer "), public_key, algorithms=["RS256"])
    except (jwt.DecodeError, jwt.ExpiredSignatureError):
        return None
    username: str | None = decoded.get("username")
    return username


def book_header(private_key: rsa.RSAPrivateKey, username: str) -> str:
    """The book's `generate_token_header`: PyJWT RS256, no kid."""
    now = datetime.now(UTC)
    payload = {"username": username, "iat": now, "exp": now + timedelta(days=2)}
    return f"Bearer {jwt.encode(payload, private_key, algorithm='RS256')}"


@pytest.fixture(scope="session")
def book_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[rsa.RSAPrivateKey, Path, bytes]:
    """The book's key pair as its files hold it: `key.pem` (PKCS#1, what `openssl genrsa`
    writes) and `key.pub` (`openssl rsa -pubout`). Generated at test time."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder = tmp_path_factory.mktemp("book-keys")
    pem = folder / "key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "key.pub").write_bytes(public)
    return key, pem, public


async def test_by_default_our_tokens_break_the_books_verifiers(
    client: httpx.AsyncClient, keys_dir: Path
) -> None:
    await create(client, "bruce", "secret-bruce")
    ours = await token(client, "bruce", "secret-bruce")
    public = (keys_dir / "test-key-1.pub.pem").read_bytes()
    with pytest.raises(jwt.InvalidAudienceError):
        book_validate(f"Bearer {ours}", public)


async def test_legacy_tokens_pass_the_books_verifier(
    start_app: Callable[[UsersSettings], Any],
    make_settings: Callable[..., UsersSettings],
    book_key: tuple[rsa.RSAPrivateKey, Path, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    private_key, pem, public = book_key
    client: httpx.AsyncClient = await start_app(
        make_settings(legacy_compatibility=True, legacy_signing_key_file=pem)
    )
    assert "legacy token compatibility is ON" in caplog.text
    await create(client, "Mary O'Neil", "secret-mary")
    # The book's frontend: no trailing slash (it follows the redirect), a form body.
    response = await client.post(
        "/api/login",
        data={"username": "Mary O'Neil", "password": "secret-mary"},
        follow_redirects=True,
    )
    assert response.status_code == 200, response.text
    authorized = response.json()["Authorized"]
    assert book_validate(authorized, public) == "Mary O'Neil"
    claims = jwt.decode(authorized.removeprefix("Bearer "), options={"verify_signature": False})
    assert "aud" not in claims
    assert "nbf" not in claims
    assert claims["exp"] > claims["iat"] >= int(time.time()) - 5
    # Signed with the book's key: published too, as kid `legacy`.
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert [key["kid"] for key in jwks["keys"]] == ["legacy", "test-key-1"]
    assert jwt.get_unverified_header(authorized.removeprefix("Bearer "))["kid"] == "legacy"

    # Our own token, and the book's own token, both verified by the users service itself.
    for header in (authorized, book_header(private_key, "Mary O'Neil")):
        me = await client.get("/api/me/", headers={"Authorization": header})
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "Mary O'Neil"


async def test_legacy_tokens_with_our_own_keys(
    start_app: Callable[[UsersSettings], Any],
    make_settings: Callable[..., UsersSettings],
    keys_dir: Path,
) -> None:
    client: httpx.AsyncClient = await start_app(make_settings(legacy_compatibility=True))
    await create(client, "bruce", "secret-bruce")
    ours = await token(client, "bruce", "secret-bruce")
    public = (keys_dir / "test-key-1.pub.pem").read_bytes()
    assert book_validate(f"Bearer {ours}", public) == "bruce"


def test_the_books_key_needs_the_compatibility_switch(
    make_settings: Callable[..., UsersSettings], book_key: tuple[rsa.RSAPrivateKey, Path, bytes]
) -> None:
    with pytest.raises(ConfigError, match="LEGACY_SIGNING_KEY_FILE needs LEGACY_COMPATIBILITY"):
        create_app(make_settings(legacy_signing_key_file=book_key[1]))


def test_an_unreadable_legacy_key_is_a_start_up_error(
    make_settings: Callable[..., UsersSettings], tmp_path: Path
) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="cannot read private key"):
        create_app(make_settings(legacy_compatibility=True, legacy_signing_key_file=bad))
