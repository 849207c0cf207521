"""What every service that verifies access tokens reads from its environment. Services mix
`TokenVerificationSettings` into their settings class (a pydantic model, so pydantic-settings
reads its fields from the environment like any other); mythoughts_auth.lifecycle builds the
verifier from it at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from mythoughts_auth.keys import KeySet


class TokenVerificationSettings(BaseModel):
    # Where the public keys come from: a folder of `<kid>.pub.pem` files (e.g. a mounted Secret;
    # no network needed) or the users service's JWKS URL (fetched, cached, refreshed on
    # rotation), never both. Whether one is required is the service's own rule.
    auth_public_keys_dir: Path | None = None
    auth_jwks_url: str | None = None
    jwt_issuer: str = "mythoughts-users"
    jwt_audience: str = "mythoughts"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=600)
    # How long fetched keys are trusted, and how often an unknown `kid` may trigger a refetch
    # (the bound stops a flood of made-up key ids from hammering the users service).
    auth_jwks_cache_seconds: float = Field(default=300, gt=0, le=86400)
    auth_jwks_min_refetch_seconds: float = Field(default=30, ge=0, le=3600)
    # The users service's Redis (its REDIS_URL and REDIS_PREFIX): where logged-out tokens and
    # deleted accounts are listed (mythoughts_auth.revocation). Unset: such tokens stay valid
    # here until they expire, and the service says so at start-up.
    redis_url: str | None = None
    redis_prefix: str = Field(default="mythoughts:", min_length=1, max_length=100)
    # A token found not revoked is believed this long without asking Redis again: the delay
    # before a logout reaches this service, traded for one Redis call per token per interval.
    revocation_recheck_seconds: float = Field(default=1.0, ge=0, le=60)

    @property
    def verifies_tokens(self) -> bool:
        return self.auth_public_keys_dir is not None or bool(self.auth_jwks_url)

    @model_validator(mode="after")
    def _one_key_source_at_most(self) -> TokenVerificationSettings:
        if self.auth_public_keys_dir is not None and self.auth_jwks_url:
            raise ValueError(
                "set only one of AUTH_PUBLIC_KEYS_DIR (a folder of <kid>.pub.pem files) or "
                "AUTH_JWKS_URL (e.g. http://users:8001/.well-known/jwks.json)"
            )
        return self


def read_public_keys(settings: TokenVerificationSettings) -> KeySet | None:
    """The key folder's keys, read when the app is built so that a bad folder stops the service
    before it serves (ValueError naming the setting); None when keys come from a JWKS URL or no
    tokens are verified."""
    if settings.auth_public_keys_dir is None:
        return None
    try:
        return KeySet.from_pem_dir(settings.auth_public_keys_dir)
    except (OSError, ValueError) as exc:
        raise ValueError(f"AUTH_PUBLIC_KEYS_DIR: {exc}") from None
