"""Verify a MyThoughts access token and say who it belongs to.

Why the algorithm is pinned to RS256
------------------------------------
The book's own services sign and verify RS256 tokens, so pinning RS256 keeps a mixed fleet of old
and new services able to verify each other's tokens during the migration. JWKS with RSA keys is
supported by every standard JWT client, and RSA verification is cheap because the public exponent
is small (65537), which matters since every authenticated request verifies a token.

Pinning (rather than trusting the token's ``alg`` header) is what defeats the classic attacks:
``alg: none`` and "HS256 signed with the public key as the HMAC secret" are refused before any
key is even looked up.

Keys come from a :class:`~mythoughts_auth.sources.KeySource`, selected by the token's ``kid``;
key URLs in the token header (``jku``, ``x5u``) are never followed, because an attacker controls
them.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from mythoughts_auth.algorithm import ALGORITHM
from mythoughts_auth.revocation import RevocationList
from mythoughts_auth.sources import KeySource

logger = logging.getLogger(__name__)

# Registered claims every token must carry. PyJWT only checks a claim it finds, so requiring them
# is what makes a token without an expiry (valid forever) or without an audience a failure.
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud"]
# With legacy compatibility on, our own tokens may come without `aud` (the users service's
# LEGACY_COMPATIBILITY: the book's verifiers refuse any `aud`); `iss` and the kid still count.
_REQUIRED_CLAIMS_COMPATIBLE = ["exp", "iat", "iss"]
# What the book's users service puts in a token, and so all a legacy token must carry.
_REQUIRED_CLAIMS_LEGACY = ["exp", "iat"]
# The cache key of the legacy public key (legacy tokens have no kid of their own).
_LEGACY_KID = "\x00legacy"


@dataclass(frozen=True, slots=True)
class LegacyCompatibility:
    """Accepting tokens of a mixed fleet during a migration from the book's services.

    With it, a verifier also accepts
    - our own tokens without ``aud`` (issued by a users service in legacy compatibility mode,
      so that the book's services, which refuse any ``aud``, accept them too), and
    - when ``public_key`` is given, the book's own tokens: RS256 with no ``kid`` header and only
      ``username``, ``iat`` and ``exp``, verified with that one key (the book's public key).

    Everything else stays as strict as without it: RS256 pinned, ``exp``/``iat``/``nbf`` checked
    with the leeway, a present ``iss`` or ``aud`` must be ours. Off by default; a verifier with it
    logs a warning, because it accepts tokens no other MyThoughts service would.
    """

    public_key: RSAPublicKey | None = None


class InvalidToken(Exception):
    """A token (or Authorization header) was refused; ``reason`` says why, briefly.

    The reason is safe to return to the client: it never contains the token itself.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature and claims have been checked."""

    username: str
    claims: dict[str, Any]


class TokenVerifier:
    """Checks signature (RS256 only), ``exp``, ``nbf``, ``iat``, ``iss``, ``aud`` and ``username``.

    ``leeway_seconds`` absorbs clock skew between the users service and this one.

    Verified tokens are remembered (up to ``cache_size``, least recently used first out): a
    client sends the same token with every request, and verifying it again costs over half a
    millisecond of CPU (the RSA signature and PyJWT's checks), more than the rest of a typical
    request (bench/README.md). A remembered token is accepted again only while it has not
    expired (``exp`` plus the leeway; the other claims cannot turn invalid with time) and while
    the key that verified it is still the key the source has for its ``kid``, so a retired or
    rotated key is refused at once. Only tokens that passed every check are remembered.

    With ``revocations`` (mythoughts_auth.revocation) every token, remembered or not, is also
    looked up in the deny list of logged-out tokens and deleted accounts.
    """

    def __init__(
        self,
        key_source: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 30,
        cache_size: int = 4096,
        legacy: LegacyCompatibility | None = None,
        revocations: RevocationList | None = None,
    ) -> None:
        if not issuer:
            raise ValueError("issuer must not be empty")
        if not audience:
            raise ValueError("audience must not be empty")
        if leeway_seconds < 0:
            raise ValueError("leeway_seconds must not be negative")
        self._key_source = key_source
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._cache_size = cache_size
        self._legacy = legacy
        self.revocations = revocations
        if legacy is not None:
            logger.warning(
                "legacy token compatibility is ON: tokens without an audience%s are accepted; "
                "turn it off once the book's services are gone",
                " and the book's tokens without a key id (legacy public key)"
                if legacy.public_key is not None
                else "",
            )
        # token -> (verified token, kid, the key that verified it, accepted until)
        self._cache: OrderedDict[str, tuple[VerifiedToken, str, RSAPublicKey, float]] = (
            OrderedDict()
        )

    async def verify(self, token: str) -> VerifiedToken:
        """Return the verified token, or raise :class:`InvalidToken` (RevocationUnavailable
        when the deny list does not answer)."""
        verified = await self._verified(token)
        if self.revocations is not None and await self.revocations.is_revoked(verified.claims):
            raise InvalidToken("token revoked")
        return verified

    async def _verified(self, token: str) -> VerifiedToken:
        remembered = self._cache.get(token)
        if remembered is not None:
            verified, kid, key, until = remembered
            if time.time() < until and await self._current_key(kid) is key:
                self._cache.move_to_end(token)
                return verified
            del self._cache[token]
        kid, key = await self._signing_key(token)
        claims = self._decode(token, key, legacy_token=kid == _LEGACY_KID)
        self._check_issued_at(claims)
        expires = _expiry(claims)
        verified = VerifiedToken(username=_username(claims), claims=claims)
        if self._cache_size > 0:
            self._cache[token] = (verified, kid, key, expires + self._leeway)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return verified

    async def _signing_key(self, token: str) -> tuple[str, RSAPublicKey]:
        # The header is read unverified, but only to refuse early: a wrong algorithm or an
        # unknown key id is rejected before any cryptography and before any key fetch.
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("algorithm not allowed")
        kid = header.get("kid")
        if kid is None and self._legacy is not None and self._legacy.public_key is not None:
            # The book's tokens have no kid: one key, the configured legacy public key.
            return _LEGACY_KID, self._legacy.public_key
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("missing key id")
        key = await self._key_source.get(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        return kid, key

    async def _current_key(self, kid: str) -> RSAPublicKey | None:
        if kid == _LEGACY_KID:
            return self._legacy.public_key if self._legacy is not None else None
        return await self._key_source.get(kid)

    def _decode(self, token: str, key: RSAPublicKey, *, legacy_token: bool) -> dict[str, Any]:
        required = _REQUIRED_CLAIMS
        issuer: str | None = self._issuer
        audience: str | None = self._audience
        if self._legacy is not None:
            payload = _unverified_claims(token)
            if legacy_token:
                # The book's tokens carry neither; a legacy token that does must still be ours.
                required = _REQUIRED_CLAIMS_LEGACY
                issuer = self._issuer if "iss" in payload else None
            else:
                required = _REQUIRED_CLAIMS_COMPATIBLE
            # Checked only when present: PyJWT refuses an `aud` it was not told to expect.
            audience = self._audience if "aud" in payload else None
        try:
            return jwt.decode(
                token,
                key,
                # Explicit even though the header was checked: this is the check that counts.
                algorithms=[ALGORITHM],
                issuer=issuer,
                audience=audience,
                leeway=self._leeway,
                # iat is checked by _check_issued_at instead of PyJWT, so that a token "issued
                # in the future" gets its own reason and a non-numeric iat is refused.
                options={"require": required, "verify_iat": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("token not yet valid") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("wrong issuer") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("wrong audience") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing {exc.claim} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("signature verification failed") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise InvalidToken("algorithm not allowed") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("malformed token") from exc
        except jwt.PyJWTError as exc:
            # E.g. a published key PyJWT refuses to use; still the client's token is unusable.
            raise InvalidToken("invalid token") from exc

    def _check_issued_at(self, claims: dict[str, Any]) -> None:
        issued_at = claims["iat"]
        # A NumericDate is a JSON number (RFC 7519); bool is an int subclass in Python.
        if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
            raise InvalidToken("malformed iat claim")
        # Checked explicitly, not left to the JWT library (whose versions disagree on it): a
        # token issued in the future means a badly skewed clock or a forged token.
        if issued_at > time.time() + self._leeway:
            raise InvalidToken("token issued in the future")


def _unverified_claims(token: str) -> dict[str, Any]:
    # Read only to decide which claims to require; the signed decode that follows is the check.
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("malformed token") from exc
    return claims


def _expiry(claims: dict[str, Any]) -> float:
    # PyJWT compares `exp` as an integer of any size; beyond a float (10**400) it passed and
    # then failed every use of the token as a time (a 500 on every service, and at logout).
    try:
        return float(claims["exp"])
    except (OverflowError, TypeError, ValueError):
        raise InvalidToken("malformed exp claim") from None


def _username(claims: dict[str, Any]) -> str:
    if "username" not in claims:
        raise InvalidToken("missing username claim")
    username = claims["username"]
    if not isinstance(username, str) or not username:
        raise InvalidToken("username claim must be a non-empty string")
    return username
