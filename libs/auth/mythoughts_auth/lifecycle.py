"""A service's side of a JWKS key source: started with the app, stopped with it, and the app is
not ready before the keys are loaded.

The service keeps its source as ``app.state.jwks`` (``None`` when its keys come from a folder,
or when it verifies no tokens) and hands these to ``servicekit.ServiceSpec``::

    on_shutdown=[stop_key_fetching], readiness_checks={"token keys": token_keys_missing}
"""

from __future__ import annotations

from fastapi import FastAPI

from mythoughts_auth.sources import JWKSKeySource


def token_keys_missing(app: FastAPI) -> str | None:
    """Readiness: keys from the users service's JWKS must be loaded, or every token would be
    refused (issue 14). None when ready."""
    source: JWKSKeySource | None = getattr(app.state, "jwks", None)
    if source is None or source.loaded:
        return None
    return f"not loaded yet from {source.url}"


async def stop_key_fetching(app: FastAPI) -> None:
    """Shutdown hook: stops the source's background fetching (JWKSKeySource.start)."""
    source: JWKSKeySource | None = getattr(app.state, "jwks", None)
    if source is not None:
        await source.aclose()
