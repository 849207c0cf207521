"""Legacy compatibility: a mixed fleet of the book's services and ours (issue 16).

The book's tokens are made exactly as its users service makes them: PyJWT, RS256, over
``{"username": ..., "iat": now, "exp": now + 2 days}``, no ``kid`` header.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from mythoughts_auth import (
    InvalidToken,
    KeySet,
    LegacyCompatibility,
    StaticKeySource,
    TokenVerifier,
    load_rsa_public_key,
)

BOOK_KID = "key-2025"  # the key pair standing in for the book's key.pem / key.pub


def book_token(tokens: Any, username: str = "bruce", **changes: object) -> str:
    """The book's `generate_token_header` without the "Bearer " prefix."""
    now = datetime.now(UTC)
    payload: dict[str, object] = {"username": username, "iat": now, "exp": now + timedelta(days=2)}
    payload.update(changes)
    return jwt.encode(payload, tokens.private_keys[BOOK_KID], algorithm="RS256")


def legacy_verifier(key_set: KeySet, tokens: Any, *, with_key: bool) -> TokenVerifier:
    return TokenVerifier(
        StaticKeySource(key_set),
        issuer=tokens.issuer,
        audience=tokens.audience,
        legacy=LegacyCompatibility(tokens.public_key(BOOK_KID) if with_key else None),
    )


async def test_the_books_tokens_are_refused_by_default(
    verifier: TokenVerifier, tokens: Any
) -> None:
    with pytest.raises(InvalidToken, match="missing key id"):
        await verifier.verify(book_token(tokens))


async def test_the_books_tokens_are_accepted_with_the_legacy_key(
    key_set: KeySet, tokens: Any
) -> None:
    verifier = legacy_verifier(key_set, tokens, with_key=True)
    verified = await verifier.verify(book_token(tokens, "Mary O'Neil"))
    assert verified.username == "Mary O'Neil"
    # Remembered, and accepted again from the cache.
    assert (await verifier.verify(book_token(tokens, "Mary O'Neil"))).username == "Mary O'Neil"


async def test_legacy_tokens_are_still_checked(key_set: KeySet, tokens: Any) -> None:
    verifier = legacy_verifier(key_set, tokens, with_key=True)
    past = datetime.now(UTC) - timedelta(days=3)
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(book_token(tokens, iat=past, exp=past + timedelta(days=2)))
    no_expiry = jwt.encode(
        {"username": "bruce", "iat": int(time.time())},
        tokens.private_keys[BOOK_KID],
        algorithm="RS256",
    )
    with pytest.raises(InvalidToken, match="missing exp"):
        await verifier.verify(no_expiry)
    stranger = jwt.encode(
        {"username": "bruce", "iat": int(time.time()), "exp": int(time.time()) + 60},
        tokens.private_keys["stranger"],
        algorithm="RS256",
    )
    with pytest.raises(InvalidToken, match="signature"):
        await verifier.verify(stranger)
    with pytest.raises(InvalidToken, match="wrong issuer"):
        await verifier.verify(book_token(tokens, iss="someone-else"))
    with pytest.raises(InvalidToken, match="wrong audience"):
        await verifier.verify(book_token(tokens, aud="someone-else"))
    with pytest.raises(InvalidToken, match="algorithm"):
        await verifier.verify(
            jwt.encode(
                {"username": "x", "iat": 1, "exp": 2**40},
                "a shared secret of at least 32 bytes",
                algorithm="HS256",
            )
        )


async def test_without_a_legacy_key_only_missing_audiences_are_tolerated(
    key_set: KeySet, tokens: Any
) -> None:
    verifier = legacy_verifier(key_set, tokens, with_key=False)
    with pytest.raises(InvalidToken, match="missing key id"):
        await verifier.verify(book_token(tokens))
    ours_without_aud = tokens.sign(tokens.claims(without=("aud",)))
    assert (await verifier.verify(ours_without_aud)).username == tokens.username
    with pytest.raises(InvalidToken, match="missing iss"):
        await verifier.verify(tokens.sign(tokens.claims(without=("aud", "iss"))))
    with pytest.raises(InvalidToken, match="wrong audience"):
        await verifier.verify(tokens.sign(tokens.claims(aud="another")))


async def test_a_slightly_skewed_nbf_is_tolerated(key_set: KeySet, tokens: Any) -> None:
    verifier = legacy_verifier(key_set, tokens, with_key=True)
    skewed = book_token(tokens, nbf=int(time.time()) + 5)
    assert (await verifier.verify(skewed)).username == "bruce"
    with pytest.raises(InvalidToken, match="not yet valid"):
        await verifier.verify(book_token(tokens, nbf=int(time.time()) + 3600))


async def test_the_default_refuses_our_tokens_without_audience(
    verifier: TokenVerifier, tokens: Any
) -> None:
    with pytest.raises(InvalidToken, match="missing aud"):
        await verifier.verify(tokens.sign(tokens.claims(without=("aud",))))


def test_turning_it_on_logs_a_warning(
    key_set: KeySet, tokens: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mythoughts_auth.verify"):
        legacy_verifier(key_set, tokens, with_key=True)
    assert "legacy token compatibility is ON" in caplog.text


def test_the_books_public_key_file_loads(tokens: Any, tmp_path: Path) -> None:
    spki = tmp_path / "key.pub"
    spki.write_bytes(tokens.public_pem(BOOK_KID))
    pkcs1 = tmp_path / "key-pkcs1.pub"
    pkcs1.write_bytes(
        tokens.public_key(BOOK_KID).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        )
    )
    expected = tokens.public_key(BOOK_KID).public_numbers()
    assert load_rsa_public_key(spki).public_numbers() == expected
    assert load_rsa_public_key(pkcs1).public_numbers() == expected
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key")
    with pytest.raises(ValueError, match=r"garbage\.pub is not a PEM-encoded public key"):
        load_rsa_public_key(garbage)
