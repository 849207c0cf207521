"""Key sources: the static one, and the JWKS one against a real HTTP server on 127.0.0.1."""

import asyncio
import logging
import uuid

import httpx
import pytest

from mythoughts_auth import (
    InvalidToken,
    JWKSKeySource,
    KeySet,
    StaticKeySource,
    TokenVerifier,
    public_jwk,
)


def same_key(a, b):
    return a is not None and b is not None and a.public_numbers() == b.public_numbers()


def publish(server, tokens, *kids):
    server.document = {"keys": [public_jwk(kid, tokens.public_key(kid)) for kid in kids]}


def jwks_source(server_or_url, clock, **kwargs):
    url = getattr(server_or_url, "url", server_or_url)
    kwargs.setdefault("cache_seconds", 300)
    kwargs.setdefault("min_refetch_interval", 30)
    return JWKSKeySource(url, clock=clock, **kwargs)


async def test_static_source_returns_keys_of_its_set(key_set):
    source = StaticKeySource(key_set)

    assert await source.get("key-2024") is key_set["key-2024"]
    assert await source.get("nope") is None


async def test_jwks_keys_load_from_the_server(jwks_server, tokens, clock):
    publish(jwks_server, tokens, "key-2024", "key-2025")
    source = jwks_source(jwks_server, clock)

    first = await source.get("key-2024")
    second = await source.get("key-2025")

    assert same_key(first, tokens.public_key("key-2024"))
    assert same_key(second, tokens.public_key("key-2025"))
    assert jwks_server.requests == 1  # one fetch, then served from the cache


async def test_verifier_accepts_a_token_through_the_jwks_source(jwks_server, tokens, clock):
    publish(jwks_server, tokens, "key-2024")
    verifier = TokenVerifier(
        jwks_source(jwks_server, clock), issuer=tokens.issuer, audience=tokens.audience
    )

    verified = await verifier.verify(tokens.sign(kid="key-2024"))

    assert verified.username == "Mary O'Neil"


async def test_unknown_kid_triggers_one_refetch_that_finds_a_newly_published_key(
    jwks_server, tokens, clock
):
    publish(jwks_server, tokens, "key-2024")
    source = jwks_source(jwks_server, clock)
    assert await source.get("key-2024") is not None
    assert jwks_server.requests == 1

    # The users service starts publishing its next key after we cached the document.
    publish(jwks_server, tokens, "key-2024", "key-2025")
    clock.advance(30)
    found = await source.get("key-2025")
    again = await source.get("key-2025")

    assert same_key(found, tokens.public_key("key-2025"))
    assert again is found
    assert jwks_server.requests == 2


async def test_flood_of_unknown_kids_causes_at_most_one_extra_fetch(jwks_server, tokens, clock):
    publish(jwks_server, tokens, "key-2024")
    source = jwks_source(jwks_server, clock)
    await source.get("key-2024")
    clock.advance(30)  # the rate limit allows exactly one refetch from now on

    random_kids = [uuid.uuid4().hex for _ in range(50)]
    concurrent = await asyncio.gather(*(source.get(kid) for kid in random_kids))
    clock.advance(29)  # still within the interval after that refetch
    sequential = [await source.get(kid) for kid in random_kids]

    assert concurrent == [None] * 50
    assert sequential == [None] * 50
    assert jwks_server.requests == 2


async def test_unknown_kid_right_after_a_fetch_does_not_refetch(jwks_server, tokens, clock):
    publish(jwks_server, tokens, "key-2024")
    source = jwks_source(jwks_server, clock)
    await source.get("key-2024")

    assert await source.get("key-2025") is None
    assert jwks_server.requests == 1


async def test_cache_expiry_drops_a_key_removed_from_the_document(jwks_server, tokens, clock):
    publish(jwks_server, tokens, "key-2024", "key-2025")
    source = jwks_source(jwks_server, clock)
    assert await source.get("key-2024") is not None

    publish(jwks_server, tokens, "key-2025")  # key-2024 retired (or revoked)
    clock.advance(300)

    assert await source.get("key-2024") is None
    assert jwks_server.requests == 2


async def test_failed_refresh_keeps_the_last_good_keys(jwks_server, tokens, clock, caplog):
    publish(jwks_server, tokens, "key-2024")
    source = jwks_source(jwks_server, clock)
    assert await source.get("key-2024") is not None

    jwks_server.status = 503
    clock.advance(300)
    with caplog.at_level(logging.WARNING, logger="mythoughts_auth.sources"):
        key = await source.get("key-2024")

    assert same_key(key, tokens.public_key("key-2024"))
    assert jwks_server.requests == 2
    assert "could not fetch JWKS" in caplog.text


async def test_server_down_refuses_the_token_instead_of_raising(
    unreachable_url, tokens, clock, caplog
):
    source = jwks_source(unreachable_url, clock, timeout_seconds=2)
    verifier = TokenVerifier(source, issuer=tokens.issuer, audience=tokens.audience)

    with (
        caplog.at_level(logging.WARNING, logger="mythoughts_auth.sources"),
        pytest.raises(InvalidToken) as excinfo,
    ):
        await verifier.verify(tokens.sign(kid="key-2024"))

    assert excinfo.value.reason == "unknown signing key"
    assert "could not fetch JWKS" in caplog.text


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(500, b'{"keys": []}', id="server-error"),
        pytest.param(200, b"<html>not json</html>", id="not-json"),
        pytest.param(200, b'{"no": "keys"}', id="not-a-jwks"),
    ],
)
async def test_bad_jwks_responses_mean_unknown_kid(jwks_server, tokens, clock, status, body):
    jwks_server.status = status
    jwks_server.raw_body = body
    source = jwks_source(jwks_server, clock)

    assert await source.get("key-2024") is None
    assert jwks_server.requests == 1


async def test_injected_http_client_is_used(tokens, clock):
    seen = []

    def handler(request):
        seen.append(str(request.url))
        return httpx.Response(200, json=KeySet({"k": tokens.public_key("key-2024")}).to_jwks())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http_client:
        source = JWKSKeySource("http://users/.well-known/jwks.json", http_client, clock=clock)
        key = await source.get("k")

    assert same_key(key, tokens.public_key("key-2024"))
    assert seen == ["http://users/.well-known/jwks.json"]


async def test_refresh_fetches_now_and_reports_success(jwks_server, tokens, clock):
    publish(jwks_server, tokens, "key-2024")
    source = jwks_source(jwks_server, clock)

    assert await source.refresh() is True
    assert await source.refresh() is True  # not rate limited: an explicit operator action
    assert list(source.keys) == ["key-2024"]
    assert jwks_server.requests == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"cache_seconds": 0}, id="cache"),
        pytest.param({"min_refetch_interval": -1}, id="interval"),
        pytest.param({"timeout_seconds": 0}, id="timeout"),
        pytest.param({"retry_seconds": 0}, id="retry"),
    ],
)
def test_jwks_source_refuses_bad_configuration(kwargs):
    with pytest.raises(ValueError, match="must"):
        JWKSKeySource("http://users/.well-known/jwks.json", **kwargs)


async def test_a_failed_first_fetch_does_not_block_the_next(jwks_server, tokens, clock):
    """Issue 14: started while the users service was down, a verifier refused every valid
    token for min_refetch_interval (30 s) after the users service was back."""
    publish(jwks_server, tokens, "key-2024")
    jwks_server.status = 503
    source = jwks_source(jwks_server, clock)
    assert await source.get("key-2024") is None
    assert not source.loaded

    jwks_server.status = 200  # the users service is back
    clock.advance(0.5)

    assert same_key(await source.get("key-2024"), tokens.public_key("key-2024"))
    assert source.loaded
    assert jwks_server.requests == 2


@pytest.mark.parametrize(
    ("min_refetch_interval", "expected"),
    [
        pytest.param(30, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0], id="capped-at-retry-max"),
        pytest.param(3, [0.5, 1.0, 2.0, 3.0, 3.0, 3.0], id="capped-at-refetch-interval"),
    ],
)
async def test_failed_fetches_back_off(jwks_server, tokens, clock, min_refetch_interval, expected):
    jwks_server.status = 503
    source = jwks_source(
        jwks_server, clock, retry_seconds=0.5, min_refetch_interval=min_refetch_interval
    )
    await source.get("key-2024")  # fails: next attempt after 0.5 s
    waits = []
    for _ in range(len(expected)):
        before = jwks_server.requests
        waited = 0.0
        while jwks_server.requests == before:
            clock.advance(0.25)
            waited += 0.25
            await source.get("key-2024")
        waits.append(waited)

    assert waits == expected


async def test_start_fetches_in_the_background_until_keys_are_loaded(jwks_server, tokens):
    publish(jwks_server, tokens, "key-2024")
    jwks_server.status = 503
    outcomes: list[bool] = []
    failed_twice, succeeded = asyncio.Event(), asyncio.Event()

    def on_refresh(ok: bool) -> None:
        outcomes.append(ok)
        if outcomes.count(False) == 2:
            failed_twice.set()
        if ok:
            succeeded.set()

    source = JWKSKeySource(jwks_server.url, retry_seconds=0.05, on_refresh=on_refresh)
    source.start()
    try:
        await asyncio.wait_for(failed_twice.wait(), 5)
        assert not source.loaded
        jwks_server.status = 200
        await asyncio.wait_for(succeeded.wait(), 5)
        assert source.loaded
        assert same_key(await source.get("key-2024"), tokens.public_key("key-2024"))
    finally:
        await source.aclose()
    assert outcomes[-1] is True
    assert outcomes.count(True) == 1  # the loader stops once loaded
