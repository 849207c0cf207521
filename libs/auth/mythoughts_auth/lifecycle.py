"""A service's side of a JWKS key source: started with the app, stopped with it, and the app is
not ready before the keys are loaded.

`install_token_verifier` (called from the service's start-up hook) keeps the source as
``app.state.jwks`` (``None`` when its keys come from a folder, or when it verifies no tokens) and
the verifier as ``app.state.token_verifier``; the service hands these to
``servicekit.ServiceSpec``::

    on_shutdown=[stop_key_fetching], readiness_checks={"token keys": token_keys_missing}
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI

from mythoughts_auth.keys import KeySet
from mythoughts_auth.revocation import RedisRevocationList
from mythoughts_auth.settings import TokenVerificationSettings
from mythoughts_auth.sources import JWKSKeySource, KeySource, StaticKeySource
from mythoughts_auth.verify import LegacyCompatibility, TokenVerifier


def install_token_verifier(
    app: FastAPI,
    settings: TokenVerificationSettings,
    public_keys: KeySet | None,
    *,
    on_refresh: Callable[[bool], None] | None = None,
    legacy: LegacyCompatibility | None = None,
) -> None:
    """The verifier the settings describe, as ``app.state.token_verifier`` (left as it is when
    the settings verify no tokens). JWKS keys are fetched in the background with
    ``app.state.http``, retried with backoff: a users service that is down keeps this instance
    unready (token_keys_missing), never stops it starting."""
    source: KeySource
    if public_keys is not None:
        source = StaticKeySource(public_keys)
    elif settings.auth_jwks_url:
        jwks = JWKSKeySource(
            settings.auth_jwks_url,
            http_client=app.state.http,
            cache_seconds=settings.auth_jwks_cache_seconds,
            min_refetch_interval=settings.auth_jwks_min_refetch_seconds,
            on_refresh=on_refresh,
        )
        jwks.start()
        app.state.jwks = source = jwks
    else:
        return
    revocations = None
    if settings.redis_url:
        revocations = RedisRevocationList(
            settings.redis_url,
            settings.redis_prefix,
            recheck_seconds=settings.revocation_recheck_seconds,
        )
    else:
        logging.getLogger(__name__).warning(
            "no REDIS_URL: tokens revoked by a logout or an account's deletion stay valid here "
            "until they expire; give this service the users service's REDIS_URL"
        )
    app.state.token_verifier = TokenVerifier(
        source,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_seconds=settings.jwt_leeway_seconds,
        legacy=legacy,
        revocations=revocations,
    )


def token_keys_missing(app: FastAPI) -> str | None:
    """Readiness: keys from the users service's JWKS must be loaded, or every token would be
    refused (issue 14). None when ready."""
    source: JWKSKeySource | None = getattr(app.state, "jwks", None)
    if source is None or source.loaded:
        return None
    return f"not loaded yet from {source.url}"


async def stop_key_fetching(app: FastAPI) -> None:
    """Shutdown hook: stops the source's background fetching (JWKSKeySource.start) and closes
    the revocation list's connections."""
    source: JWKSKeySource | None = getattr(app.state, "jwks", None)
    if source is not None:
        await source.aclose()
    verifier: TokenVerifier | None = getattr(app.state, "token_verifier", None)
    if verifier is not None and verifier.revocations is not None:
        await verifier.revocations.close()
