"""The book's frontend against our users and thoughts services, in legacy compatibility mode.

Real service processes; the exchanges are made as the book's frontend makes them, with
`requests` as it does: `POST {users}/api/login` (no trailing slash, so it follows our redirect)
with a form body, the `Authorized` value kept and sent back as the `Authorization` header, the
token decoded by the frontend itself with the public key (PyJWT, no audience), its own page
(`GET /api/me/thoughts/`, every thought oldest first, past 20), posting (form `text`) and
searching. A token made exactly as the book's users service makes them (PyJWT RS256, no kid) is
accepted as well, as is the "logging out" the book's frontend does: forgetting the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.testing import LocalSystem


@pytest.fixture(scope="module")
def book_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[rsa.RSAPrivateKey, Path, Path]:
    """The book's key files (generated now): key.pem (PKCS#1) and key.pub."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder = tmp_path_factory.mktemp("book-key")
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (folder / "key.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, folder / "key.pem", folder / "key.pub"


@pytest.fixture(scope="module")
def legacy_system(
    tmp_path_factory: pytest.TempPathFactory, book_key: tuple[rsa.RSAPrivateKey, Path, Path]
) -> Iterator[LocalSystem]:
    _, private_pem, public_pem = book_key
    overrides = {
        "users": {"LEGACY_COMPATIBILITY": "true", "LEGACY_SIGNING_KEY_FILE": str(private_pem)},
        "thoughts": {
            "LEGACY_COMPATIBILITY": "true",
            "AUTH_LEGACY_PUBLIC_KEY_FILE": str(public_pem),
            "LEGACY_LIST_BATCH_SIZE": "10",
        },
    }
    root = tmp_path_factory.mktemp("legacy-system")
    with LocalSystem(root, services=("thoughts", "users"), overrides=overrides) as system:
        yield system


def book_login(users_url: str, username: str, password: str) -> str | None:
    """The book frontend's login: the `Authorized` value, or None when refused."""
    response = requests.post(
        f"{users_url}/api/login", data={"username": username, "password": password}, timeout=10
    )
    if response.status_code != 200:
        return None
    authorized: str = response.json()["Authorized"]
    return authorized


def book_username(authorized: str, public_pem: bytes) -> str:
    """The book's frontend decodes the token itself (PyJWT 1.7 `decode`, no audience)."""
    token = authorized.split(" ", 1)[1]
    username: str = jwt.decode(token, public_pem, algorithms=["RS256"])["username"]
    return username


def test_the_books_frontend_works_unchanged(
    legacy_system: LocalSystem, book_key: tuple[rsa.RSAPrivateKey, Path, Path]
) -> None:
    users, thoughts = legacy_system.url("users"), legacy_system.url("thoughts")
    public_pem = book_key[2].read_bytes()
    legacy_system.create_user("Mary O'Neil", "secret-mary")
    assert book_login(users, "Mary O'Neil", "wrong password") is None

    authorized = book_login(users, "Mary O'Neil", "secret-mary")
    assert authorized is not None
    assert book_username(authorized, public_pem) == "Mary O'Neil"
    headers = {"Authorization": authorized}

    texts = [f"thought {n} of Mary" + (" with a needle" if n % 3 == 0 else "") for n in range(27)]
    for text in texts:
        posted = requests.post(
            f"{thoughts}/api/me/thoughts/", data={"text": text}, headers=headers, timeout=10
        )
        assert posted.status_code == 201, posted.text
    # Somebody else's thought, which her page must not show but a search must find.
    legacy_system.create_user("stephen", "secret-stephen")
    other = book_login(users, "stephen", "secret-stephen")
    assert other is not None
    requests.post(
        f"{thoughts}/api/me/thoughts/",
        data={"text": "stephen's needle"},
        headers={"Authorization": other},
        timeout=10,
    ).raise_for_status()

    page = requests.get(f"{thoughts}/api/me/thoughts/", headers=headers, timeout=10)
    assert page.status_code == 200
    assert [t["text"] for t in page.json()] == texts  # every one, oldest first, past 20
    assert {t["username"] for t in page.json()} == {"Mary O'Neil"}

    found = requests.get(f"{thoughts}/api/thoughts/", params={"search": "NEEDLE"}, timeout=10)
    assert found.status_code == 200
    assert [t["text"] for t in found.json()] == [
        *(text for text in texts if "needle" in text),
        "stephen's needle",
    ]
    # Clients that page still page.
    paged = requests.get(f"{thoughts}/api/thoughts/", params={"limit": 5}, timeout=10)
    assert len(paged.json()) == 5
    assert 'rel="next"' in paged.headers["Link"]


def test_the_books_own_tokens_are_accepted(
    legacy_system: LocalSystem, book_key: tuple[rsa.RSAPrivateKey, Path, Path]
) -> None:
    """A token from the book's users service, still held by a client mid-migration."""
    legacy_system.create_user("bruce", "secret-bruce")  # imported from the book's database
    now = datetime.now(UTC)
    token = jwt.encode(
        {"username": "bruce", "iat": now, "exp": now + timedelta(days=2)},
        book_key[0],
        algorithm="RS256",
    )
    assert "kid" not in jwt.get_unverified_header(token)
    headers = {"Authorization": f"Bearer {token}"}
    thoughts = legacy_system.url("thoughts")
    posted = requests.post(
        f"{thoughts}/api/me/thoughts/",
        data={"text": "from a book token"},
        headers=headers,
        timeout=10,
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["username"] == "bruce"
    me = requests.get(f"{legacy_system.url('users')}/api/me/", headers=headers, timeout=10)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "bruce"
    # A token the book's key did not sign is still refused.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {"username": "bruce", "iat": now, "exp": now + timedelta(days=2)},
        stranger,
        algorithm="RS256",
    )
    refused = requests.get(
        f"{thoughts}/api/me/thoughts/", headers={"Authorization": f"Bearer {forged}"}, timeout=10
    )
    assert refused.status_code == 401
    assert "legacy token compatibility is ON" in legacy_system.logs("thoughts")
