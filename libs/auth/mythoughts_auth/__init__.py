"""Verification of MyThoughts access tokens (RS256 JWTs issued by the users service).

Signing is deliberately absent: only the users service holds private keys.
"""

from mythoughts_auth.algorithm import ALGORITHM
from mythoughts_auth.dependencies import (
    CurrentToken,
    CurrentUser,
    OptionalUser,
    current_token,
    current_username,
    optional_username,
    parse_bearer,
)
from mythoughts_auth.keys import KeySet, load_rsa_public_key, public_jwk
from mythoughts_auth.revocation import (
    MemoryRevocationList,
    RedisRevocationList,
    RevocationList,
    RevocationUnavailable,
)
from mythoughts_auth.sources import JWKSKeySource, KeySource, StaticKeySource
from mythoughts_auth.verify import (
    InvalidToken,
    LegacyCompatibility,
    TokenVerifier,
    VerifiedToken,
)

__all__ = [
    "ALGORITHM",
    "CurrentToken",
    "CurrentUser",
    "InvalidToken",
    "JWKSKeySource",
    "KeySet",
    "KeySource",
    "LegacyCompatibility",
    "MemoryRevocationList",
    "OptionalUser",
    "RedisRevocationList",
    "RevocationList",
    "RevocationUnavailable",
    "StaticKeySource",
    "TokenVerifier",
    "VerifiedToken",
    "current_token",
    "current_username",
    "load_rsa_public_key",
    "optional_username",
    "parse_bearer",
    "public_jwk",
]
