"""Logins under load: how many a second the users service completes, and whether it stays usable
while a flood of wrong-password logins hits it (issue 15, target 2).

    .venv/bin/python bench/login_flood.py [--workers 2] [--seconds 10]

Starts the users service as `make run` does (a real process, SQLite), with the argon2id cost of
its defaults (not the tests' cheap one), then measures:

1. capacity: 8 clients logging in correctly in a closed loop, each from its own address;
2. a flood of 64 concurrent wrong-password logins (unknown names, so no account throttle stops
   them), from 64 addresses and then from one, while one prober reads `/healthz` every 20 ms and
   another client logs in correctly every 250 ms: the `/healthz` p50/p99, the good logins'
   latencies and failures (0: no answer within 5 s), and what the flood got (401 refused, 503
   overloaded, 429 throttled).

Addresses are given as X-Forwarded-For, which the server trusts from loopback (uvicorn's
FORWARDED_ALLOW_IPS default), as it would from the gateway. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from devtools.testing import LocalSystem
from users_service.settings import UsersSettings

FLOOD = 64


def _production_settings() -> dict[str, str]:
    """The users service's defaults for what the local test system makes cheap or generous."""
    fields = UsersSettings.model_fields
    return {
        name.upper(): str(fields[name].default)
        for name in (
            "argon2_time_cost",
            "argon2_memory_kib",
            "argon2_parallelism",
            "password_checks_per_client",
        )
        if name in fields
    }


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


TIMED_OUT = 0  # the status recorded for a login that got no answer within the client's timeout


async def _login(client: httpx.AsyncClient, name: str, password: str, address: str) -> int:
    try:
        answer = await client.post(
            "/api/login/",
            json={"username": name, "password": password},
            headers={"X-Forwarded-For": address},
        )
    except httpx.TimeoutException:
        return TIMED_OUT
    return answer.status_code


async def capacity(base: str, name: str, password: str, seconds: float) -> float:
    done = 0
    deadline = time.monotonic() + seconds

    async def client_loop(n: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.monotonic() < deadline:
                if await _login(client, name, password, f"198.51.100.{n + 1}") == 200:
                    done += 1

    started = time.monotonic()
    await asyncio.gather(*(client_loop(n) for n in range(8)))
    return done / (time.monotonic() - started)


async def flood(base: str, name: str, password: str, seconds: float, addresses: int) -> dict:
    stop = asyncio.Event()
    flood_statuses: Counter[int] = Counter()
    health: list[float] = []
    good: list[float] = []
    good_failures: Counter[int] = Counter()

    async def attacker(n: int) -> None:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
            address = f"203.0.113.{n % addresses + 1}"
            while not stop.is_set():
                status = await _login(client, f"nobody-{uuid.uuid4().hex[:8]}", "wrong", address)
                flood_statuses[status] += 1
                if status == 503:
                    await asyncio.sleep(0.05)  # a client that was told "not now" comes back soon

    async def prober() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while not stop.is_set():
                started = time.perf_counter()
                await client.get("/healthz")
                health.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)

    async def good_client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            while not stop.is_set():
                started = time.perf_counter()
                status = await _login(client, name, password, "192.0.2.200")
                if status == 200:
                    good.append(time.perf_counter() - started)
                else:
                    good_failures[status] += 1
                await asyncio.sleep(0.25)

    tasks = [asyncio.create_task(attacker(n)) for n in range(FLOOD)]
    await asyncio.sleep(1.0)  # the flood is at full strength before anything is measured
    watchers = [asyncio.create_task(prober()), asyncio.create_task(good_client())]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, *watchers)
    return {
        "flood_addresses": addresses,
        "flood_answers": dict(sorted(flood_statuses.items())),
        "healthz_p50_ms": round(statistics.median(health) * 1000, 1),
        "healthz_p99_ms": round(_percentile(health, 0.99) * 1000, 1),
        "good_logins": len(good),
        "good_login_failures": dict(good_failures),
        "good_login_p50_ms": round(statistics.median(good) * 1000, 1) if good else None,
        "good_login_max_ms": round(max(good) * 1000, 1) if good else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    cost = _production_settings()
    overrides = {"users": {**cost, "WORKERS": str(args.workers)}}
    with (
        tempfile.TemporaryDirectory() as root,
        LocalSystem(Path(root), services=("users",), overrides=overrides) as system,
    ):
        name, password = "flood-bench", "correct horse battery staple"
        system.create_user(name, password)
        base = system.url("users")
        result = {
            "settings": cost,
            "workers": args.workers,
            "logins_per_second": round(
                asyncio.run(capacity(base, name, password, args.seconds)), 1
            ),
            "distributed_flood": asyncio.run(flood(base, name, password, args.seconds, FLOOD)),
            "single_address_flood": asyncio.run(flood(base, name, password, args.seconds, 1)),
        }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
