"""Shared fixtures: key pairs generated per session, a token factory, apps and a JWKS server.

Tests sign their own tokens: signing is the users service's job, not this library's. No key is
ever written to the repository; the pairs below exist only in memory for one test session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from mythoughts_auth import (
    CurrentUser,
    KeySet,
    OptionalUser,
    StaticKeySource,
    TokenVerifier,
)

ISSUER = "https://users.mythoughts.test"
AUDIENCE = "mythoughts"
USERNAME = "Mary O'Neil"  # the book's own tests use names with spaces and punctuation
TRUSTED_KIDS = ("key-2024", "key-2025")
STRANGER_KID = "stranger"  # a key pair whose public key no verifier trusts


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


class TokenFactory:
    """Builds good and deliberately bad tokens."""

    issuer = ISSUER
    audience = AUDIENCE
    username = USERNAME

    def __init__(self, private_keys: dict[str, rsa.RSAPrivateKey]) -> None:
        self.private_keys = private_keys

    def public_key(self, kid: str) -> rsa.RSAPublicKey:
        return self.private_keys[kid].public_key()

    def public_pem(self, kid: str) -> bytes:
        return self.public_key(kid).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def claims(self, *, without: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "username": self.username,
            "iat": now,
            "exp": now + 600,
            "iss": self.issuer,
            "aud": self.audience,
        }
        claims.update(overrides)
        for name in without:
            del claims[name]
        return claims

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        *,
        kid: str | None = "key-2024",
        signing_kid: str | None = None,
    ) -> str:
        """An RS256 token; ``signing_kid`` signs with another key than the one ``kid`` names
        (needed when ``kid`` is None or names no key pair at all)."""
        key = self.private_keys[signing_kid or kid or "key-2024"]
        headers = {"kid": kid} if kid is not None else None
        return jwt.encode(
            self.claims() if claims is None else claims, key, algorithm="RS256", headers=headers
        )

    def unsigned(self, kid: str = "key-2024") -> str:
        """An ``alg: none`` token: no signature at all."""
        header = b64url_json({"alg": "none", "typ": "JWT", "kid": kid})
        return f"{header}.{b64url_json(self.claims())}."

    def hs256_with_public_pem(self, kid: str = "key-2024") -> str:
        """Key confusion: HMAC-signed with the (public!) PEM as the shared secret."""
        header = b64url_json({"alg": "HS256", "typ": "JWT", "kid": kid})
        signing_input = f"{header}.{b64url_json(self.claims())}"
        mac = hmac.new(self.public_pem(kid), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    def tampered(self, **changes: Any) -> str:
        """A genuine token whose payload was edited afterwards, keeping the original signature."""
        header, _, signature = self.sign().split(".")
        return f"{header}.{b64url_json(self.claims(**changes))}.{signature}"


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    private_keys = {
        kid: rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for kid in (*TRUSTED_KIDS, STRANGER_KID)
    }
    return TokenFactory(private_keys)


@pytest.fixture(scope="session")
def key_set(tokens: TokenFactory) -> KeySet:
    """The keys a verifier trusts: two, as during a key rotation."""
    return KeySet({kid: tokens.public_key(kid) for kid in TRUSTED_KIDS})


@pytest.fixture
def verifier(key_set: KeySet) -> TokenVerifier:
    return TokenVerifier(StaticKeySource(key_set), issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def app(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    app.state.token_verifier = verifier

    @app.get("/me")
    async def me(username: CurrentUser) -> dict[str, str]:
        return {"username": username}

    @app.get("/maybe")
    async def maybe(username: OptionalUser) -> dict[str, str | None]:
        return {"username": username}

    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


class FakeClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class JWKSServer:
    """A real HTTP server on 127.0.0.1 serving a JWKS document the test controls."""

    path = "/.well-known/jwks.json"

    def __init__(self) -> None:
        self.document: Any = {"keys": []}
        self.status = 200
        self.raw_body: bytes | None = None  # when set, served instead of the document
        self.requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # A short poll interval keeps shutdown (once per test) from taking half a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != state.path:
                    self.send_error(404)
                    return
                with state._lock:
                    state.requests += 1
                    status = state.status
                    body = state.raw_body or json.dumps(state.document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output readable

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def unreachable_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: the port is free once the probe closes."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/.well-known/jwks.json"


# The tokens that verification refuses, each with the reason it gives: one table for every test
# that takes `build` and `reason` (the verifier's own and the FastAPI dependency's), so that the
# two cannot drift apart. `build(tokens)` makes the token from the session's TokenFactory.
BAD_TOKENS = [
    pytest.param(lambda t: "garbage", "malformed token", id="garbage"),
    pytest.param(lambda t: t.unsigned(), "algorithm not allowed", id="alg-none"),
    pytest.param(
        lambda t: t.hs256_with_public_pem(), "algorithm not allowed", id="hs256-key-confusion"
    ),
    pytest.param(
        lambda t: t.tampered(username="admin"),
        "signature verification failed",
        id="tampered-payload",
    ),
    pytest.param(
        lambda t: t.sign(t.claims(exp=int(time.time()) - 3600)),
        "token expired",
        id="expired",
    ),
    pytest.param(
        lambda t: t.sign(t.claims(nbf=int(time.time()) + 3600)),
        "token not yet valid",
        id="nbf-in-future",
    ),
    pytest.param(
        lambda t: t.sign(t.claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200)),
        "token issued in the future",
        id="iat-in-future",
    ),
    pytest.param(
        lambda t: t.sign(t.claims(iat="yesterday")), "malformed iat claim", id="iat-not-number"
    ),
    pytest.param(
        lambda t: t.sign(t.claims(iss="https://evil.example")), "wrong issuer", id="issuer"
    ),
    pytest.param(lambda t: t.sign(t.claims(aud="other-system")), "wrong audience", id="aud"),
    pytest.param(
        lambda t: t.sign(kid="nope", signing_kid="key-2024"),
        "unknown signing key",
        id="unknown-kid",
    ),
    pytest.param(lambda t: t.sign(kid=None), "missing key id", id="missing-kid"),
    pytest.param(
        lambda t: t.sign(t.claims(without=("exp",))), "missing exp claim", id="missing-exp"
    ),
    pytest.param(
        lambda t: t.sign(t.claims(without=("iat",))), "missing iat claim", id="missing-iat"
    ),
    pytest.param(
        lambda t: t.sign(t.claims(without=("iss",))), "missing iss claim", id="missing-iss"
    ),
    pytest.param(
        lambda t: t.sign(t.claims(without=("aud",))), "missing aud claim", id="missing-aud"
    ),
    pytest.param(
        lambda t: t.sign(t.claims(without=("username",))),
        "missing username claim",
        id="missing-username",
    ),
    pytest.param(
        lambda t: t.sign(t.claims(username=42)),
        "username claim must be a non-empty string",
        id="username-not-string",
    ),
    pytest.param(
        lambda t: t.sign(t.claims(username=["Mary"])),
        "username claim must be a non-empty string",
        id="username-a-list",
    ),
    pytest.param(
        lambda t: t.sign(t.claims(username="")),
        "username claim must be a non-empty string",
        id="username-empty",
    ),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if {"build", "reason"} <= set(metafunc.fixturenames):
        metafunc.parametrize(("build", "reason"), BAD_TOKENS)
