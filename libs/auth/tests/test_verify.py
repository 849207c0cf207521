"""TokenVerifier: what it accepts, and the exact reason for everything it refuses."""

import datetime
import time

import pytest

from mythoughts_auth import InvalidToken, KeySet, StaticKeySource, TokenVerifier, VerifiedToken


async def test_valid_token_gives_the_username(verifier, tokens):
    verified = await verifier.verify(tokens.sign())

    assert isinstance(verified, VerifiedToken)
    assert verified.username == "Mary O'Neil"
    assert verified.claims["iss"] == tokens.issuer
    assert verified.claims["aud"] == tokens.audience


async def test_rotation_accepts_tokens_signed_by_either_key(verifier, tokens):
    old = await verifier.verify(tokens.sign(tokens.claims(username="old key"), kid="key-2024"))
    new = await verifier.verify(tokens.sign(tokens.claims(username="new key"), kid="key-2025"))

    assert (old.username, new.username) == ("old key", "new key")


async def test_token_signed_by_a_key_outside_the_set_is_refused(verifier, tokens):
    with pytest.raises(InvalidToken) as excinfo:
        await verifier.verify(tokens.sign(kid="stranger"))

    assert excinfo.value.reason == "unknown signing key"


async def test_foreign_key_claiming_a_trusted_kid_fails_the_signature(verifier, tokens):
    token = tokens.sign(kid="key-2024", signing_kid="stranger")

    with pytest.raises(InvalidToken) as excinfo:
        await verifier.verify(token)

    assert excinfo.value.reason == "signature verification failed"


async def test_key_removed_from_the_set_is_no_longer_accepted(tokens):
    only_new = KeySet({"key-2025": tokens.public_key("key-2025")})
    verifier = TokenVerifier(
        StaticKeySource(only_new), issuer=tokens.issuer, audience=tokens.audience
    )

    with pytest.raises(InvalidToken) as excinfo:
        await verifier.verify(tokens.sign(kid="key-2024"))

    assert excinfo.value.reason == "unknown signing key"


async def test_refused_tokens_give_their_reason(verifier, tokens, build, reason):
    token = build(tokens)

    with pytest.raises(InvalidToken) as excinfo:
        await verifier.verify(token)

    assert excinfo.value.reason == reason
    assert str(excinfo.value) == reason
    assert token not in str(excinfo.value)


async def test_clock_skew_within_leeway_is_tolerated(verifier, tokens):
    now = int(time.time())
    token = tokens.sign(tokens.claims(iat=now + 20, nbf=now + 20, exp=now + 600))

    assert (await verifier.verify(token)).username == "Mary O'Neil"


async def test_recently_expired_token_within_leeway_is_accepted(verifier, tokens):
    now = int(time.time())
    token = tokens.sign(tokens.claims(iat=now - 600, exp=now - 10))

    assert (await verifier.verify(token)).username == "Mary O'Neil"


async def test_an_expiry_beyond_any_time_is_refused_not_an_error(verifier, tokens):
    """A signed exp of 10**400 passed PyJWT's check, then every service answered 500."""
    token = tokens.sign(tokens.claims(exp=10**400))

    with pytest.raises(InvalidToken) as excinfo:
        await verifier.verify(token)

    assert excinfo.value.reason == "malformed exp claim"


async def test_audience_list_containing_ours_is_accepted(verifier, tokens):
    token = tokens.sign(tokens.claims(aud=["frontend", tokens.audience]))

    assert (await verifier.verify(token)).username == "Mary O'Neil"


async def test_unknown_kid_is_refused_before_any_signature_check(tokens):
    class RecordingSource:
        def __init__(self):
            self.asked = []

        async def get(self, kid):
            self.asked.append(kid)

    source = RecordingSource()
    verifier = TokenVerifier(source, issuer=tokens.issuer, audience=tokens.audience)

    with pytest.raises(InvalidToken):
        await verifier.verify(tokens.unsigned())
    with pytest.raises(InvalidToken) as excinfo:
        await verifier.verify(tokens.sign(kid="key-2024"))

    # alg "none" never reached the key source; the RS256 token did, and found nothing.
    assert source.asked == ["key-2024"]
    assert excinfo.value.reason == "unknown signing key"


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"issuer": "", "audience": "a"}, id="empty-issuer"),
        pytest.param({"issuer": "i", "audience": ""}, id="empty-audience"),
        pytest.param({"issuer": "i", "audience": "a", "leeway_seconds": -1}, id="negative-leeway"),
    ],
)
def test_verifier_refuses_bad_configuration(key_set, kwargs):
    with pytest.raises(ValueError, match="must not be"):
        TokenVerifier(StaticKeySource(key_set), **kwargs)


class SwappableSource:
    """A key source whose keys a test can change, as a JWKS refresh or a rotation does."""

    def __init__(self, keys):
        self.keys = dict(keys)
        self.asked = 0

    async def get(self, kid):
        self.asked += 1
        return self.keys.get(kid)


async def test_a_remembered_token_is_accepted_without_verifying_it_again(tokens, monkeypatch):
    source = SwappableSource({"key-2024": tokens.public_key("key-2024")})
    verifier = TokenVerifier(source, issuer=tokens.issuer, audience=tokens.audience)
    token = tokens.sign(kid="key-2024")
    first = await verifier.verify(token)

    def no_second_decode(*args, **kwargs):
        raise AssertionError("a remembered token was decoded again")

    monkeypatch.setattr("mythoughts_auth.verify.jwt.decode", no_second_decode)
    again = await verifier.verify(token)

    assert again.username == first.username == "Mary O'Neil"


async def test_a_remembered_token_is_refused_once_its_key_is_retired(tokens):
    source = SwappableSource({"key-2024": tokens.public_key("key-2024")})
    verifier = TokenVerifier(source, issuer=tokens.issuer, audience=tokens.audience)
    token = tokens.sign(kid="key-2024")
    await verifier.verify(token)

    del source.keys["key-2024"]
    with pytest.raises(InvalidToken) as excinfo:
        await verifier.verify(token)
    assert excinfo.value.reason == "unknown signing key"

    # A different key under the same kid (a botched rotation) does not inherit the trust either.
    source.keys["key-2024"] = tokens.public_key("key-2025")
    with pytest.raises(InvalidToken) as excinfo:
        await verifier.verify(token)
    assert excinfo.value.reason == "signature verification failed"


async def test_a_remembered_token_is_refused_once_it_expires(tokens, monkeypatch):
    source = SwappableSource({"key-2024": tokens.public_key("key-2024")})
    verifier = TokenVerifier(
        source, issuer=tokens.issuer, audience=tokens.audience, leeway_seconds=0
    )
    now = int(time.time())
    token = tokens.sign(tokens.claims(iat=now - 60, exp=now + 2), kid="key-2024")
    await verifier.verify(token)

    later = time.time() + 5

    class Later(datetime.datetime):  # PyJWT's own clock, five seconds on
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime.fromtimestamp(later, tz)

    monkeypatch.setattr("mythoughts_auth.verify.time.time", lambda: later)
    monkeypatch.setattr("jwt.api_jwt.datetime", Later)
    with pytest.raises(InvalidToken) as excinfo:
        await verifier.verify(token)
    assert excinfo.value.reason == "token expired"
