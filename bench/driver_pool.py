"""asyncpg's own pool against servicekit's hand-written ConnectionPool, on the hot path's work.

    .venv/bin/python bench/driver_pool.py [--seconds 5] [--concurrency 32] [--size 8]

Each of `concurrency` tasks, for `seconds` per pool, takes a connection, runs one prepared
one-row statement and gives the connection back; the figure is the process's CPU time per
statement (what a request pays on a busy 2-core machine) and statements per second, the best of
`rounds` interleaved runs. asyncpg's pool is measured with its default reset on release and with
`reset=` a no-op (asyncpg >= 0.30), since ours resets nothing. The figures are quoted in
servicekit/driver/connection_pool.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import uvloop

from servicekit.driver import ConnectionPool

DSN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432") + "/postgres"
SQL = "SELECT $1::int + 1"


async def _noop_reset(_connection: Any) -> None:
    return None


async def _run(
    name: str, fetch: Callable[[int], Awaitable[Any]], seconds: float, concurrency: int
) -> tuple[str, float, float]:
    count = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal count
        while time.monotonic() < stop:
            await fetch(count)
            count += 1

    for _ in range(200):  # warm: connections open, statement prepared on each
        await fetch(1)
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    return name, cpu / count * 1e6, count / wall


async def main(seconds: float, concurrency: int, size: int, rounds: int) -> None:
    ours = ConnectionPool(lambda: asyncpg.connect(DSN), size)
    await ours.open()

    async def fetch_ours(n: int) -> Any:
        async with ours.connection() as connection:
            return await connection.fetchval(SQL, n)

    theirs_default = await asyncpg.create_pool(DSN, min_size=size, max_size=size)
    theirs_noop = await asyncpg.create_pool(DSN, min_size=size, max_size=size, reset=_noop_reset)

    def fetch_of(pool: asyncpg.Pool) -> Callable[[int], Awaitable[Any]]:
        async def fetch(n: int) -> Any:
            async with pool.acquire() as connection:
                return await connection.fetchval(SQL, n)

        return fetch

    candidates = [
        ("servicekit ConnectionPool", fetch_ours),
        ("asyncpg create_pool (default reset)", fetch_of(theirs_default)),
        ("asyncpg create_pool (reset=no-op)", fetch_of(theirs_noop)),
    ]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in candidates}
    for _ in range(rounds):  # interleaved, so that a noisy neighbour hurts all alike
        for name, fetch in candidates:
            _, cpu_us, rate = await _run(name, fetch, seconds, concurrency)
            results[name].append((cpu_us, rate))
    for name, runs in results.items():
        best_cpu = min(cpu for cpu, _ in runs)
        best_rate = max(rate for _, rate in runs)
        print(f"{name:38s} {best_cpu:6.1f} us CPU/statement  {best_rate:8.0f} statements/s")
    await ours.close()
    await theirs_default.close()
    await theirs_noop.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    uvloop.run(main(args.seconds, args.concurrency, args.size, args.rounds))
