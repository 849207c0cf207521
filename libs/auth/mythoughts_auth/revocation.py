"""Tokens refused before they expire: logged out (by `jti`) or of a deleted account (by name).

Tokens are verified offline, so a revocation reaches the other services through a short-lived
deny list that every verifier consults after the signature check (cached tokens included):

- `revoke_token(jti, expires_at)`: one token, kept until the token would have expired anyway;
- `revoke_user(username, ttl)`: every token of that name issued up to now (`iat` not after the
  revocation), kept for the longest token lifetime.

With Redis (the users service's REDIS_URL, also given to thoughts and tasks) the list is shared
by every replica of every service. The hot path: a token found not revoked is believed for
`recheck_seconds` (1 s) in this process, so a busy client costs one Redis round trip (an MGET of
two keys, 0.1-0.6 ms) per second per process instead of one per request, and a revocation
reaches every service within that second. A Redis that does not answer raises
RevocationUnavailable, which the dependencies turn into 503: a revoked token is never let
through. Without Redis the list lives in one process (the users service alone, e.g. `make run`),
and other services cannot see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError


class RevocationUnavailable(Exception):
    """The shared deny list did not answer: the request cannot be authenticated now."""


class RevocationList(Protocol):
    async def revoke_token(self, jti: str, expires_at: float) -> None: ...

    async def revoke_user(self, username: str, ttl_seconds: int) -> None: ...

    async def is_revoked(self, claims: Mapping[str, Any]) -> bool: ...

    async def close(self) -> None: ...


def _revoked(claims: Mapping[str, Any], token_listed: bool, user_revoked_at: float | None) -> bool:
    if token_listed:
        return True
    if user_revoked_at is None:
        return False
    issued_at = claims.get("iat")
    # A token without a numeric iat never passed verification; count it as old to be safe.
    return not isinstance(issued_at, int | float) or issued_at <= user_revoked_at


class MemoryRevocationList:
    """One process's deny list; expired entries are dropped as new ones arrive."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.tokens: dict[str, float] = {}  # jti -> until
        self.users: dict[str, tuple[float, float]] = {}  # username -> (revoked at, until)

    def _prune(self, now: float) -> None:
        self.tokens = {jti: until for jti, until in self.tokens.items() if until > now}
        self.users = {name: entry for name, entry in self.users.items() if entry[1] > now}

    async def revoke_token(self, jti: str, expires_at: float) -> None:
        now = self.clock()
        self._prune(now)
        self.tokens[jti] = expires_at

    async def revoke_user(self, username: str, ttl_seconds: int) -> None:
        now = self.clock()
        self._prune(now)
        self.users[username] = (now, now + ttl_seconds)

    async def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        now = self.clock()
        jti, username = claims.get("jti"), claims.get("username")
        listed = isinstance(jti, str) and self.tokens.get(jti, 0.0) > now
        entry = self.users.get(username) if isinstance(username, str) else None
        revoked_at = entry[0] if entry is not None and entry[1] > now else None
        return _revoked(claims, listed, revoked_at)

    async def close(self) -> None:
        self.tokens.clear()
        self.users.clear()


class RedisRevocationList:
    """The deny list in Redis: `<prefix>revoked:jti:<jti>` and `<prefix>revoked:user:<name>`
    (the revocation time), each expiring with the last token it can concern."""

    # Bound on the tokens believed at once (one entry per distinct token in the last second).
    MAX_BELIEVED = 10_000

    def __init__(
        self,
        url: str,
        prefix: str = "mythoughts:",
        *,
        recheck_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Short timeouts: this sits on every authenticated request.
        self.client = redis_asyncio.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.prefix = f"{prefix}revoked:"
        self.recheck_seconds = recheck_seconds
        self.clock = clock
        # (jti, username, iat) -> believed not revoked until
        self._believed: dict[tuple[Any, Any, Any], float] = {}

    async def revoke_token(self, jti: str, expires_at: float) -> None:
        ttl = max(1, int(expires_at - time.time()) + 1)
        try:
            await self.client.set(f"{self.prefix}jti:{jti}", b"1", ex=ttl)
        except RedisError as exc:
            raise RevocationUnavailable(type(exc).__name__) from exc

    async def revoke_user(self, username: str, ttl_seconds: int) -> None:
        try:
            await self.client.set(
                f"{self.prefix}user:{username}", repr(time.time()), ex=max(1, ttl_seconds)
            )
        except RedisError as exc:
            raise RevocationUnavailable(type(exc).__name__) from exc

    async def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        jti, username = claims.get("jti"), claims.get("username")
        seen = (jti, username, claims.get("iat"))
        now = self.clock()
        if self._believed.get(seen, 0.0) > now:
            return False
        keys = [
            f"{self.prefix}jti:{jti if isinstance(jti, str) else ''}",
            f"{self.prefix}user:{username if isinstance(username, str) else ''}",
        ]
        try:
            token_value, user_value = await self.client.mget(keys)
        except RedisError as exc:
            raise RevocationUnavailable(type(exc).__name__) from exc
        listed = isinstance(jti, str) and token_value is not None
        revoked = _revoked(claims, listed, float(user_value) if user_value is not None else None)
        if not revoked and self.recheck_seconds > 0:
            if len(self._believed) >= self.MAX_BELIEVED:
                self._believed = {k: t for k, t in self._believed.items() if t > now}
                if len(self._believed) >= self.MAX_BELIEVED:
                    self._believed.clear()
            self._believed[seen] = now + self.recheck_seconds
        return revoked

    async def close(self) -> None:
        await self.client.aclose()
