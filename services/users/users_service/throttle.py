"""Throttling of *failed* logins, per username and per client address.

Fixed windows: the first failure opens a window of `window_seconds`; once `limit` failures are in
it, further attempts answer 429 with Retry-After until the window closes. Successful logins are
never counted, so a busy address with correct passwords is never slowed down. With REDIS_URL the
counters are shared by every replica; otherwise they live in this process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as redis_asyncio


class FailureCounter(Protocol):
    async def failures(self, key: str) -> tuple[int, float]:
        """(failures in the current window, seconds until it closes)."""

    async def add_failure(self, key: str, window_seconds: int) -> None: ...

    async def clear(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryFailureCounter:
    # A flood of distinct usernames must not grow memory without bound: past this many keys,
    # closed windows are pruned, and if that is not enough the oldest windows are dropped.
    MAX_KEYS = 100_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.windows: dict[str, tuple[int, float]] = {}

    async def failures(self, key: str) -> tuple[int, float]:
        count, closes_at = self.windows.get(key, (0, 0.0))
        remaining = closes_at - self.clock()
        return (count, remaining) if remaining > 0 else (0, 0.0)

    async def add_failure(self, key: str, window_seconds: int) -> None:
        now = self.clock()
        count, closes_at = self.windows.get(key, (0, 0.0))
        if closes_at <= now:
            count, closes_at = 0, now + window_seconds
        self.windows[key] = (count + 1, closes_at)
        if len(self.windows) > self.MAX_KEYS:
            self._prune(now)

    def _prune(self, now: float) -> None:
        self.windows = {k: v for k, v in self.windows.items() if v[1] > now}
        overflow = len(self.windows) - self.MAX_KEYS
        if overflow > 0:
            for key in sorted(self.windows, key=lambda k: self.windows[k][1])[:overflow]:
                del self.windows[key]

    async def clear(self, key: str) -> None:
        self.windows.pop(key, None)

    async def close(self) -> None:
        self.windows.clear()


class RedisFailureCounter:
    def __init__(self, url: str, prefix: str = "mythoughts:login-failures:") -> None:
        self.client = redis_asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    async def failures(self, key: str) -> tuple[int, float]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.prefix + key)
            pipe.pttl(self.prefix + key)
            value, ttl_ms = await pipe.execute()
        if value is None or ttl_ms <= 0:
            return 0, 0.0
        return int(value), ttl_ms / 1000

    async def add_failure(self, key: str, window_seconds: int) -> None:
        name = self.prefix + key
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            # NX: only the first failure sets the expiry, so the window is fixed.
            pipe.expire(name, window_seconds, nx=True)
            await pipe.execute()

    async def clear(self, key: str) -> None:
        await self.client.delete(self.prefix + key)

    async def close(self) -> None:
        await self.client.aclose()


class LoginThrottle:
    def __init__(
        self,
        counter: FailureCounter,
        *,
        window_seconds: int,
        max_per_username: int,
        max_per_address: int,
    ) -> None:
        self.counter = counter
        self.window_seconds = window_seconds
        self.limits = {"user": max_per_username, "addr": max_per_address}

    @staticmethod
    def _keys(username: str, address: str) -> dict[str, str]:
        return {"user": f"user:{username.casefold()}", "addr": f"addr:{address}"}

    async def retry_after(self, username: str, address: str) -> int | None:
        """Seconds to wait when throttled, else None."""
        wait = 0.0
        for kind, key in self._keys(username, address).items():
            count, remaining = await self.counter.failures(key)
            if count >= self.limits[kind]:
                wait = max(wait, remaining)
        return max(1, math.ceil(wait)) if wait > 0 else None

    async def record_failure(self, username: str, address: str) -> None:
        for key in self._keys(username, address).values():
            await self.counter.add_failure(key, self.window_seconds)

    async def record_success(self, username: str, address: str) -> None:
        await self.counter.clear(self._keys(username, address)["user"])

    async def close(self) -> None:
        await self.counter.close()
