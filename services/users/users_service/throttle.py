"""Throttling of failed logins: per (account, client), per account with backoff, per client.

The account is the row a login names (``id:<user id>``), or, for a name with no account, its
normalised form (``name:<key>``), so that unknown names are throttled like known ones and two
rows whose names fold alike never share a counter. Three fixed-window counters, each opened by
its first count and closed `window_seconds` later:

- (account, client): every attempt is counted *before* the password is checked (so parallel
  guesses cannot slip through between check and count) and the account's own success clears it.
  Past `max_per_client` the client waits for the window: one client has that many guesses.
- account: failures from any client. Once it holds `max_per_client`, a client that has already
  failed on this account waits 2^(failures - max_per_client) seconds after the last failure,
  at most `backoff_max_seconds`, before its next attempt. A client with no failures on the
  account is never held back by it: whoever attacks the account cannot lock out the real user
  logging in from their own address (and a mistyped password costs them a short delay, never the
  whole window). The account's own success clears it.
- client address: failures on every account (guessing many names from one address).

With REDIS_URL the counters are shared by every replica; otherwise they live in this process.

Why hand-written and not the `limits` package (issue 9, bench/login_counters.py): its fixed
windows count and expire like ours, but the policy needs two things it does not keep, the time of
an account's last failure (the backoff is measured from it) and taking back one count (an attempt
refused by the backoff, or never checked); with it, both would still be code of ours beside it.
And it is not as cheap: on 2026-12-06 (2 cores shared, load average ~28), the client CPU of one
failed login's counter work, best of 3 interleaved rounds, was 4.9 µs ours against 21.5 µs with
`limits` in memory (4.4 times), and 1,721 against 1,639 µs on Redis (0.95: a count is one Lua
script there, a MULTI/EXEC transaction here), next to the ~24 ms of argon2 a login pays anyway.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError


@dataclass(frozen=True)
class Window:
    count: int
    remaining: float  # seconds until the window closes
    last: float  # the counter's clock when it was last counted (0 when empty)


EMPTY = Window(0, 0.0, 0.0)


@dataclass
class Throttled(Exception):
    retry_after: int


class CountersUnavailable(Exception):
    """The shared counters (Redis) did not answer: the login answers 503, never unthrottled."""


class FailureCounter(Protocol):
    def now(self) -> float:
        """The clock that `Window.last` is read on."""

    async def get(self, key: str) -> Window: ...

    async def add(self, key: str, window_seconds: int) -> Window:
        """Counts one, atomically, and returns the window after it."""

    async def take_back(self, key: str) -> None:
        """Uncounts one attempt that was refused before it was tried."""

    async def clear(self, *keys: str) -> None: ...

    async def close(self) -> None: ...


class MemoryFailureCounter:
    # A flood of distinct usernames must not grow memory without bound: past this many keys,
    # closed windows are pruned, and if that is not enough the oldest windows are dropped.
    MAX_KEYS = 100_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # key -> (count, closes at, last counted at)
        self.windows: dict[str, tuple[int, float, float]] = {}

    def now(self) -> float:
        return self.clock()

    async def get(self, key: str) -> Window:
        count, closes_at, last = self.windows.get(key, (0, 0.0, 0.0))
        remaining = closes_at - self.clock()
        return Window(count, remaining, last) if remaining > 0 else EMPTY

    async def add(self, key: str, window_seconds: int) -> Window:
        now = self.clock()
        count, closes_at, _ = self.windows.get(key, (0, 0.0, 0.0))
        if closes_at <= now:
            count, closes_at = 0, now + window_seconds
        self.windows[key] = (count + 1, closes_at, now)
        if len(self.windows) > self.MAX_KEYS:
            self._prune(now)
        return Window(count + 1, closes_at - now, now)

    async def take_back(self, key: str) -> None:
        if key in self.windows:
            count, closes_at, last = self.windows[key]
            self.windows[key] = (max(0, count - 1), closes_at, last)

    def _prune(self, now: float) -> None:
        self.windows = {k: v for k, v in self.windows.items() if v[1] > now}
        overflow = len(self.windows) - self.MAX_KEYS
        if overflow > 0:
            for key in sorted(self.windows, key=lambda k: self.windows[k][1])[:overflow]:
                del self.windows[key]

    async def clear(self, *keys: str) -> None:
        for key in keys:
            self.windows.pop(key, None)

    async def close(self) -> None:
        self.windows.clear()


class RedisFailureCounter:
    """One hash per key (`c` count, `l` wall-clock time of the last count) with the window's
    expiry; the replicas' clocks only need to agree to within a backoff step."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis_asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    def now(self) -> float:
        return time.time()

    @asynccontextmanager
    async def _answering(self) -> AsyncIterator[None]:
        try:
            yield
        except RedisError as exc:
            raise CountersUnavailable(type(exc).__name__) from exc

    async def get(self, key: str) -> Window:
        async with self._answering(), self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(self.prefix + key, "c", "l")
            pipe.pttl(self.prefix + key)
            (count, last), ttl_ms = await pipe.execute()
        if count is None or ttl_ms <= 0:
            return EMPTY
        return Window(int(count), ttl_ms / 1000, float(last or 0))

    async def add(self, key: str, window_seconds: int) -> Window:
        name = self.prefix + key
        now = self.now()
        async with self._answering(), self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(name, "c", 1)
            pipe.hset(name, "l", repr(now))
            # NX: only the first count sets the expiry, so the window is fixed.
            pipe.expire(name, window_seconds, nx=True)
            pipe.pttl(name)
            count, _, _, ttl_ms = await pipe.execute()
        return Window(int(count), max(ttl_ms, 0) / 1000, now)

    async def take_back(self, key: str) -> None:
        async with self._answering():
            await self.client.hincrby(self.prefix + key, "c", -1)

    async def clear(self, *keys: str) -> None:
        async with self._answering():
            await self.client.delete(*(self.prefix + key for key in keys))

    async def close(self) -> None:
        await self.client.aclose()


@dataclass(frozen=True)
class Attempt:
    """One login attempt let through by `LoginThrottle.begin`; report how it ended."""

    account_key: str
    pair_key: str
    address_key: str


class LoginThrottle:
    def __init__(
        self,
        counter: FailureCounter,
        *,
        window_seconds: int,
        max_per_client: int,
        max_per_address: int,
        backoff_max_seconds: int,
    ) -> None:
        self.counter = counter
        self.window_seconds = window_seconds
        self.max_per_client = max_per_client
        self.max_per_address = max_per_address
        self.backoff_max_seconds = backoff_max_seconds

    async def begin(self, account: str, address: str) -> Attempt:
        """Counts an attempt of `address` on `account`, or raises Throttled."""
        attempt = Attempt(f"acct:{account}", f"pair:{account}|{address}", f"addr:{address}")
        by_address = await self.counter.get(attempt.address_key)
        if by_address.count >= self.max_per_address:
            raise Throttled(_seconds(by_address.remaining))
        pair = await self.counter.add(attempt.pair_key, self.window_seconds)
        if pair.count > self.max_per_client:
            raise Throttled(_seconds(pair.remaining))
        if pair.count > 1:  # this client has failed on this account: the backoff applies
            wait = self._backoff(await self.counter.get(attempt.account_key))
            if wait > 0:
                await self.counter.take_back(attempt.pair_key)
                raise Throttled(_seconds(wait))
        return attempt

    def _backoff(self, account: Window) -> float:
        excess = account.count - self.max_per_client
        if excess < 0:
            return 0.0
        delay = min(2.0**excess, float(self.backoff_max_seconds))
        return min(account.last + delay - self.counter.now(), account.remaining)

    async def failed(self, attempt: Attempt) -> None:
        await self.counter.add(attempt.account_key, self.window_seconds)
        await self.counter.add(attempt.address_key, self.window_seconds)

    async def succeeded(self, attempt: Attempt) -> None:
        await self.counter.clear(attempt.pair_key, attempt.account_key)

    async def abandoned(self, attempt: Attempt) -> None:
        """The password was never checked (the service was too busy): the attempt counts for
        nothing, so that a client told "503, retry" is not throttled for retrying."""
        await self.counter.take_back(attempt.pair_key)

    async def close(self) -> None:
        await self.counter.close()


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
