"""Signing keys: configuration errors and the rotation walk-through of the README."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from mythoughts_auth import InvalidToken, KeySet, StaticKeySource, TokenVerifier
from servicekit.settings import ConfigError
from users_service.signing import generate_key, load_signing_keys


def test_generated_private_key_is_owner_only(tmp_path: Path) -> None:
    kid = generate_key(tmp_path)
    assert (tmp_path / f"{kid}.key.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / f"{kid}.pub.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(FileExistsError):
        generate_key(tmp_path, kid)


@pytest.mark.parametrize(
    ("setup", "signing_kid", "message"),
    [
        ("missing", None, "does not exist"),
        ("empty", None, "no private key"),
        ("two", None, "set JWT_SIGNING_KID"),
        ("one", "other", "has no private key"),
    ],
)
def test_key_configuration_errors_are_clear(
    tmp_path: Path, setup: str, signing_kid: str | None, message: str
) -> None:
    keys_dir = tmp_path / "keys"
    if setup != "missing":
        keys_dir.mkdir()
    if setup in ("one", "two"):
        generate_key(keys_dir, "a")
    if setup == "two":
        generate_key(keys_dir, "b")
    with pytest.raises(ConfigError, match=message):
        load_signing_keys(keys_dir, signing_kid)


async def _verify(client: httpx.AsyncClient, token: str) -> str:
    """Verifies as another service would: against the JWKS published right now."""
    jwks = (await client.get("/.well-known/jwks.json")).json()
    verifier = TokenVerifier(
        StaticKeySource(KeySet.from_jwks(jwks)), issuer="mythoughts-users", audience="mythoughts"
    )
    return (await verifier.verify(token)).username


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
async def test_rotation_without_a_failed_request(
    tmp_path: Path, start_app: Any, make_settings: Any
) -> None:
    keys = tmp_path / "keys"
    generate_key(keys, "old")

    async def start(signing_kid: str | None) -> httpx.AsyncClient:
        client: httpx.AsyncClient = await start_app(
            make_settings(jwt_keys_dir=keys, jwt_signing_kid=signing_kid)
        )
        return client

    async def token_from(client: httpx.AsyncClient) -> str:
        response = await client.post("/api/login/", data={"username": "bruce", "password": "pw"})
        return str(response.json()["Authorized"]).removeprefix("Bearer ")

    # 0. one key signs
    step0 = await start(None)
    await step0.post("/admin/users/", json={"username": "bruce", "password": "pw"})
    old_token = await token_from(step0)

    # 1. add the new key; the old one still signs, both are published
    generate_key(keys, "new")
    step1 = await start("old")
    published = {key["kid"] for key in (await step1.get("/.well-known/jwks.json")).json()["keys"]}
    assert published == {"old", "new"}
    assert await _verify(step1, await token_from(step1)) == "bruce"

    # 2. the new key signs; tokens signed by the old one stay valid
    step2 = await start("new")
    new_token = await token_from(step2)
    assert await _verify(step2, new_token) == "bruce"
    assert await _verify(step2, old_token) == "bruce"

    # 3. retire the old private key, keep publishing its public half until its tokens expire
    (keys / "old.key.pem").unlink()
    step3 = await start("new")
    assert await _verify(step3, old_token) == "bruce"
    assert await _verify(step3, await token_from(step3)) == "bruce"

    # 4. drop it entirely: its tokens are refused, the new ones keep working
    (keys / "old.pub.pem").unlink()
    step4 = await start(None)
    with pytest.raises(InvalidToken):
        await _verify(step4, old_token)
    assert await _verify(step4, new_token) == "bruce"
