"""The login throttle's hand-written counters against the `limits` package, for the same policy.

    .venv/bin/python bench/login_counters.py [--attempts 20000] [--rounds 3] [--redis URL]

users_service.throttle counts failed logins in fixed windows (MemoryFailureCounter in the
process, RedisFailureCounter shared by the replicas). `limits` (FixedWindowRateLimiter on its
MemoryStorage and its Redis storage, asyncio API) keeps fixed windows too. Each round runs, per
implementation, `attempts` failed logins of one client on one account, with the counter
operations the policy needs for each: read the address's window, count the (account, client)
pair and read its count, read the account's window (for the backoff), count the account and the
address. `limits` answers a hit with allowed-or-not only, so the pair's count is read with
`get_window_stats` after the hit. The figure is the process's CPU time per attempt, the best of
`rounds` interleaved rounds (Redis's own CPU is not included: both send the same kind of
commands). The figures are quoted in users_service/throttle.py's docstring and bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

from users_service.throttle import MemoryFailureCounter, RedisFailureCounter

WINDOW_SECONDS = 60
# Large enough that no hit is refused: the policy reads the counts, it does not stop at a limit.
ITEM = RateLimitItemPerMinute(10**9)

Attempt = Callable[[str, str], Awaitable[None]]


def ours(counter: MemoryFailureCounter | RedisFailureCounter) -> Attempt:
    async def attempt(account: str, address: str) -> None:
        await counter.get(f"addr:{address}")
        pair = await counter.add(f"pair:{account}|{address}", WINDOW_SECONDS)
        assert pair.count >= 1
        await counter.get(f"acct:{account}")
        await counter.add(f"acct:{account}", WINDOW_SECONDS)
        await counter.add(f"addr:{address}", WINDOW_SECONDS)

    return attempt


def with_limits(limiter: FixedWindowRateLimiter) -> Attempt:
    async def attempt(account: str, address: str) -> None:
        await limiter.get_window_stats(ITEM, "addr", address)
        await limiter.hit(ITEM, "pair", account, address)
        stats = await limiter.get_window_stats(ITEM, "pair", account, address)
        assert ITEM.amount - stats.remaining >= 1
        await limiter.get_window_stats(ITEM, "acct", account)
        await limiter.hit(ITEM, "acct", account)
        await limiter.hit(ITEM, "addr", address)

    return attempt


async def _cpu_per_attempt(attempt: Attempt, attempts: int) -> float:
    account, address = f"bench-{uuid.uuid4().hex[:8]}", "203.0.113.7"
    started = time.process_time()
    for _ in range(attempts):
        await attempt(account, address)
    return (time.process_time() - started) / attempts * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    prefix = f"bench-login-counters-{uuid.uuid4().hex[:8]}:"
    redis_counter = RedisFailureCounter(args.redis, prefix)
    # redis-py, the client the service already has (limits defaults to coredis).
    redis_storage = RedisStorage(
        f"async+{args.redis}", key_prefix=prefix.rstrip(":"), implementation="redispy"
    )
    candidates: dict[str, tuple[Attempt, int]] = {
        "memory, ours": (ours(MemoryFailureCounter()), args.attempts),
        "memory, limits": (with_limits(FixedWindowRateLimiter(MemoryStorage())), args.attempts),
        # Redis round trips dominate: fewer attempts keep a round short.
        "redis, ours": (ours(redis_counter), args.attempts // 10),
        "redis, limits": (with_limits(FixedWindowRateLimiter(redis_storage)), args.attempts // 10),
    }
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, (attempt, attempts) in candidates.items():
            figure = await _cpu_per_attempt(attempt, attempts)
            best[name] = min(best.get(name, figure), figure)
    await redis_counter.client.delete(
        *[key async for key in redis_counter.client.scan_iter(prefix + "*")]
    )
    await redis_counter.close()
    print(f"CPU time per failed login (best of {args.rounds}), microseconds")
    for name, figure in best.items():
        print(f"  {name:16} {figure:8.1f}")
    for backend in ("memory", "redis"):
        ratio = best[f"{backend}, limits"] / best[f"{backend}, ours"]
        print(f"  {backend}: limits / ours = {ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
