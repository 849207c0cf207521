"""The deny list of logged-out tokens and deleted accounts (mythoughts_auth.revocation), in one
process and in Redis, and the verifier consulting it (issue 14 item 12)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis

from mythoughts_auth import (
    MemoryRevocationList,
    RedisRevocationList,
    RevocationList,
    RevocationUnavailable,
    StaticKeySource,
    TokenVerifier,
)
from mythoughts_auth.verify import InvalidToken
from testkit import need

from .conftest import AUDIENCE, ISSUER, TokenFactory

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        need(f"Redis at {REDIS_URL} is not reachable ({exc})")
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def revocations(request: pytest.FixtureRequest) -> AsyncIterator[RevocationList]:
    if request.param == "memory":
        yield MemoryRevocationList()
        return
    prefix = f"mttest-{uuid.uuid4().hex[:8]}:"
    listed = RedisRevocationList(_redis_or_skip(), prefix, recheck_seconds=0)
    yield listed
    await listed.close()
    connection = redis.Redis.from_url(REDIS_URL)
    for key in connection.scan_iter(f"{prefix}*"):
        connection.delete(key)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = time.time()
    return {"jti": uuid.uuid4().hex, "username": "bruce", "iat": now, "exp": now + 600, **overrides}


async def test_a_revoked_token_is_listed_and_no_other(revocations: RevocationList) -> None:
    token, other = _claims(), _claims()
    await revocations.revoke_token(token["jti"], token["exp"])
    assert await revocations.is_revoked(token)
    assert not await revocations.is_revoked(other)


async def test_a_revoked_user_loses_the_tokens_issued_before(revocations: RevocationList) -> None:
    before = _claims(iat=time.time() - 10)
    other_user = _claims(username="stephen", iat=time.time() - 10)
    await revocations.revoke_user("bruce", 3600)
    assert await revocations.is_revoked(before)
    assert not await revocations.is_revoked(other_user)
    assert not await revocations.is_revoked(_claims(iat=time.time() + 5))  # issued later


async def test_entries_expire_with_the_tokens_they_concern() -> None:
    now = [1000.0]
    revocations = MemoryRevocationList(clock=lambda: now[0])
    token = _claims(iat=990.0, exp=1600.0)
    await revocations.revoke_token(token["jti"], token["exp"])
    await revocations.revoke_user("stephen", 700)
    now[0] = 1601.0
    assert not await revocations.is_revoked(token)
    await revocations.revoke_token("another", 2000.0)  # a write prunes what expired
    assert set(revocations.tokens) == {"another"}
    now[0] = 1701.0
    assert not await revocations.is_revoked(_claims(username="stephen", iat=999.0))


async def test_redis_that_does_not_answer_is_unavailable_never_not_revoked() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    revocations = RedisRevocationList(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(RevocationUnavailable):
            await revocations.is_revoked(_claims())
        with pytest.raises(RevocationUnavailable):
            await revocations.revoke_token("x", time.time() + 60)
    finally:
        await revocations.close()


async def test_the_verifier_refuses_a_revoked_token_even_when_remembered(
    tokens: TokenFactory, key_set: Any, revocations: RevocationList
) -> None:
    verifier = TokenVerifier(
        StaticKeySource(key_set), issuer=ISSUER, audience=AUDIENCE, revocations=revocations
    )
    claims = tokens.claims(jti=uuid.uuid4().hex)
    token = tokens.sign(claims)
    assert (await verifier.verify(token)).username == tokens.username  # now remembered
    await revocations.revoke_token(claims["jti"], claims["exp"])
    with pytest.raises(InvalidToken, match="token revoked"):
        await verifier.verify(token)


async def test_an_unanswering_list_makes_the_request_503_not_200(
    tokens: TokenFactory, key_set: Any, app: Any
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.state.token_verifier = TokenVerifier(
        StaticKeySource(key_set),
        issuer=ISSUER,
        audience=AUDIENCE,
        revocations=RedisRevocationList(f"redis://127.0.0.1:{port}/0"),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/me", headers={"Authorization": f"Bearer {tokens.sign()}"})
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    await app.state.token_verifier.revocations.close()


async def test_a_token_found_not_revoked_is_believed_for_the_recheck_interval() -> None:
    now = [0.0]
    prefix = f"mttest-{uuid.uuid4().hex[:8]}:"
    believing = RedisRevocationList(
        _redis_or_skip(), prefix, recheck_seconds=1.0, clock=lambda: now[0]
    )
    claims = _claims()
    try:
        assert not await believing.is_revoked(claims)
        await believing.revoke_token(claims["jti"], claims["exp"])
        now[0] = 0.9  # within the interval: no Redis call, the old answer stands
        assert not await believing.is_revoked(claims)
        now[0] = 1.1
        assert await believing.is_revoked(claims)
        assert await believing.is_revoked(claims)  # a revoked answer is never believed away
    finally:
        await believing.close()
        redis.Redis.from_url(REDIS_URL).delete(f"{prefix}revoked:jti:{claims['jti']}")
