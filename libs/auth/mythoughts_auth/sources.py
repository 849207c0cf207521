"""Where a verifier gets the public key for a ``kid``: a fixed key set, or the users service's JWKS.

A key source answers "which key is this kid?" and nothing else; ``None`` means "not a key we
trust", which the verifier turns into a 401. Sources never raise for operational problems (an
unreachable users service must degrade to refused tokens, not to 500s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from mythoughts_auth.keys import KeySet

logger = logging.getLogger(__name__)


class KeySource(Protocol):
    """Anything that can look up a trusted public key by kid."""

    async def get(self, kid: str) -> RSAPublicKey | None:
        """The trusted key for ``kid``, or ``None`` if there is none."""
        ...


class StaticKeySource:
    """A key source over a fixed key set, e.g. PEM files mounted from a Kubernetes Secret."""

    def __init__(self, keys: KeySet) -> None:
        self._keys = keys

    @property
    def keys(self) -> KeySet:
        return self._keys

    async def get(self, kid: str) -> RSAPublicKey | None:
        return self._keys.get(kid)


class JWKSKeySource:
    """A key source that fetches the users service's JWKS document and caches it.

    - The document is cached for ``cache_seconds``; after that it is refetched on the next lookup,
      so that removed (revoked) keys stop being trusted and new ones appear.
    - An unknown kid triggers an early refetch, because the users service may have just started
      signing with a newly published key.
    - After a successful fetch, the next one happens no sooner than ``min_refetch_interval``
      seconds later. Otherwise anyone could make us hammer the users service by sending tokens
      with random kids; within the interval an unknown kid is simply unknown.
    - After a failed fetch, the next one may happen after a backoff that starts at
      ``retry_seconds`` and doubles with each failure in a row, up to ``retry_max_seconds`` (or
      ``min_refetch_interval`` if shorter). A failure must not wait the whole interval: a
      service started while the users service was down refused every valid token for that long
      after the users service was back (issue 14). Failures are cheap and rare, and a fetch is
      one small GET, so a short cap costs the users service nothing worth counting.
    - A failed fetch is logged and the last good key set is kept: a users service restart must
      not log everybody out of every other service. With no good key set yet, every kid is
      unknown, so tokens are refused with 401 rather than raising.
    - ``start()`` fetches in the background, with that backoff, until a key set is loaded;
      ``loaded`` says whether one is (a service is not ready before: /readyz).

    ``on_refresh(succeeded)`` is told the outcome of every fetch (a service counts them: a
    failing JWKS refresh means new signing keys go unseen). Its calls are named
    ``dependency`` (the kit's outgoing-call metrics).

    ``http_client`` lets a service share its configured client (timeouts, request-id
    forwarding); without one, a short-lived client is used per fetch, which is fine because
    fetches are rare by construction. ``clock`` exists so tests can move time.
    """

    def __init__(
        self,
        url: str,
        http_client: httpx.AsyncClient | None = None,
        cache_seconds: float = 300,
        min_refetch_interval: float = 30,
        *,
        timeout_seconds: float = 5.0,
        retry_seconds: float = 0.5,
        retry_max_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_refresh: Callable[[bool], None] | None = None,
        dependency: str = "users",
    ) -> None:
        if cache_seconds <= 0:
            raise ValueError("cache_seconds must be positive")
        if min_refetch_interval < 0:
            raise ValueError("min_refetch_interval must not be negative")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if not 0 < retry_seconds <= retry_max_seconds:
            raise ValueError("retry_seconds must be positive and at most retry_max_seconds")
        self._url = url
        self._http_client = http_client
        self._cache_seconds = cache_seconds
        self._min_refetch_interval = min_refetch_interval
        self._timeout = timeout_seconds
        self._retry_seconds = retry_seconds
        self._retry_max = max(retry_seconds, min(retry_max_seconds, min_refetch_interval))
        self._clock = clock
        self._on_refresh = on_refresh
        self._dependency = dependency
        self._keys = KeySet()
        self._fetched_at: float | None = None  # last successful fetch
        self._next_fetch_at: float | None = None  # no fetch before (None: any time)
        self._failures = 0  # failed fetches in a row
        # One fetch at a time: concurrent requests with the same new kid share a single fetch.
        self._lock = asyncio.Lock()
        self._loader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self._url

    @property
    def keys(self) -> KeySet:
        """The key set from the last successful fetch (empty before the first one)."""
        return self._keys

    @property
    def loaded(self) -> bool:
        """Whether a key set was ever fetched: before, every token is refused."""
        return self._fetched_at is not None

    def start(self) -> None:
        """Fetches in the background until a key set is loaded (from the running loop, e.g. at
        start-up). A users service that is down delays readiness, never the start-up itself."""
        if self._loader is None and not self.loaded:
            self._loader = asyncio.get_running_loop().create_task(self._load())

    async def aclose(self) -> None:
        """Stops the background fetching of `start()`."""
        if self._loader is not None:
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
            self._loader = None

    async def _load(self) -> None:
        while not self.loaded:
            async with self._lock:
                if not self.loaded and self._may_fetch():
                    await self._refresh()
            if not self.loaded:
                assert self._next_fetch_at is not None  # set by the failed fetch
                await asyncio.sleep(max(0.0, self._next_fetch_at - self._clock()))

    async def get(self, kid: str) -> RSAPublicKey | None:
        # Fast path, taken by almost every request: a fresh cache that knows the kid.
        if self._is_fresh() and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            # Whoever held the lock before us may already have fetched what we need.
            if self._is_fresh() and kid in self._keys:
                return self._keys[kid]
            if self._may_fetch():
                await self._refresh()
        return self._keys.get(kid)

    async def refresh(self) -> bool:
        """Fetch the document now, ignoring the rate limit (e.g. to warm the cache at start-up).

        Returns whether the fetch succeeded; failures are logged, never raised.
        """
        async with self._lock:
            return await self._refresh()

    def _is_fresh(self) -> bool:
        return self._fetched_at is not None and (
            self._clock() - self._fetched_at < self._cache_seconds
        )

    def _may_fetch(self) -> bool:
        return self._next_fetch_at is None or self._clock() >= self._next_fetch_at

    async def _refresh(self) -> bool:
        try:
            keys = await self._fetch()
        except (httpx.HTTPError, ValueError) as exc:
            # ValueError covers a body that is not JSON or not a JWKS document.
            self._failures += 1
            backoff = min(self._retry_seconds * 2 ** min(self._failures - 1, 30), self._retry_max)
            self._next_fetch_at = self._clock() + backoff
            logger.warning(
                "could not fetch JWKS from %s (%s: %s); keeping %d cached key(s); "
                "next attempt in %.1fs at the earliest",
                self._url,
                type(exc).__name__,
                exc,
                len(self._keys),
                backoff,
            )
            if self._on_refresh is not None:
                self._on_refresh(False)
            return False
        self._keys = keys
        self._failures = 0
        self._fetched_at = self._clock()
        self._next_fetch_at = self._fetched_at + self._min_refetch_interval
        if self._on_refresh is not None:
            self._on_refresh(True)
        return True

    async def _fetch(self) -> KeySet:
        if self._http_client is not None:
            response = await self._http_client.get(
                self._url, timeout=self._timeout, extensions={"dependency": self._dependency}
            )
        else:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(self._url)
        response.raise_for_status()
        return KeySet.from_jwks(response.json())
