"""Logins under load: how many a second the users service completes, and whether it stays usable
while a flood of wrong-password logins hits it (issue 15, target 2).

    .venv/bin/python bench/login_flood.py [--workers 2] [--seconds 10] [--set NAME=VALUE ...]

Starts the users service as `make run` does (a real process, SQLite), with the argon2id cost of
its defaults (not the tests' cheap one), then measures:

1. capacity: 8 clients logging in correctly in a closed loop, each from its own address: logins
   per second and the users service's CPU per login (its worker processes, from /proc);
2. a flood of 64 concurrent wrong-password logins (unknown names, so no account throttle stops
   them; the per-address failure limit is the tests' generous one, so that the queue is what
   is measured), from 64 addresses and then from one, while one prober reads `/healthz` every
   20 ms and another client logs in correctly every 250 ms (both in a process of their own):
   the `/healthz` p50/p99, the good logins' latencies and failures (0: no answer within 5 s),
   what the flood got (401 refused, 503 overloaded, 429 throttled), and the CPU cores the
   users service and the flood's generator used meanwhile.

Addresses are given as X-Forwarded-For, which the server trusts from loopback (uvicorn's
FORWARDED_ALLOW_IPS default), as it would from the gateway. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from openloop import Request, _Connection, _encode
from run import Service, cpu_seconds, memory_of

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


async def capacity(
    base: str, name: str, password: str, seconds: float, users: Service
) -> dict[str, Any]:
    done = 0
    deadline = time.monotonic() + seconds

    async def client_loop(n: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.monotonic() < deadline:
                if await _login(client, name, password, f"198.51.100.{n + 1}") == 200:
                    done += 1

    meter = _CpuWindow(users)
    await asyncio.gather(*(client_loop(n) for n in range(8)))
    cpu = meter.stop()
    return {
        "logins_per_second": round(done / cpu["seconds"], 1),
        "users_cpu_ms_per_login": round(cpu["users"] * 1000 / max(done, 1), 1),
        "users_cpu_cores": round(cpu["users"] / cpu["seconds"], 2),
        "load_average": os.getloadavg()[0],
    }


def _login_request(name: str, password: str, address: str) -> Request:
    return Request(
        "POST",
        "/api/login/",
        {"Content-Type": "application/json", "X-Forwarded-For": address},
        json.dumps({"username": name, "password": password}).encode(),
    )


async def _attacker(base: str, address: str, stop: asyncio.Event, answers: Counter[int]) -> None:
    """Wrong-password logins on one keep-alive connection, each sent as soon as the last is
    answered (50 ms after a 503). Raw HTTP (bench/openloop.py's connection): httpx's ~2 ms of
    CPU per request would make the generator, not the service, the bottleneck on 2 cores."""
    url = urlsplit(base)
    connection: _Connection | None = None
    try:
        while not stop.is_set():
            if connection is None:
                reader, writer = await asyncio.open_connection(url.hostname, url.port)
                connection = _Connection(reader, writer)
            raw = _encode(
                _login_request(f"nobody-{uuid.uuid4().hex[:8]}", "wrong", address), url.netloc
            )
            try:
                status, keep = await asyncio.wait_for(connection.exchange(raw), 60)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                status, keep = TIMED_OUT, False
            answers[status] += 1
            if not keep:
                connection.close()
                connection = None
            if status == 503:
                await asyncio.sleep(0.05)  # a client that was told "not now" comes back soon
    finally:
        if connection is not None:
            connection.close()


def _watch(base: str, name: str, password: str, seconds: float) -> dict[str, Any]:
    """In a process of its own, so that the flood's generator does not delay its clocks: one
    prober reads /healthz every 20 ms, another client logs in correctly every 250 ms."""

    async def watch() -> dict[str, Any]:
        health: list[float] = []
        good: list[float] = []
        good_failures: Counter[int] = Counter()
        deadline = time.monotonic() + seconds

        async def prober() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    await client.get("/healthz")
                    health.append(time.perf_counter() - started)
                    await asyncio.sleep(0.02)

        async def good_client() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    status = await _login(client, name, password, "192.0.2.200")
                    if status == 200:
                        good.append(time.perf_counter() - started)
                    else:
                        good_failures[status] += 1
                    await asyncio.sleep(0.25)

        await asyncio.gather(prober(), good_client())
        return {
            "healthz_p50_ms": round(statistics.median(health) * 1000, 1),
            "healthz_p99_ms": round(_percentile(health, 0.99) * 1000, 1),
            "healthz_max_ms": round(max(health) * 1000, 1),
            "good_logins": len(good),
            "good_login_failures": dict(good_failures),
            "good_login_p50_ms": round(statistics.median(good) * 1000, 1) if good else None,
            "good_login_max_ms": round(max(good) * 1000, 1) if good else None,
        }

    return asyncio.run(watch())


async def flood(
    base: str, name: str, password: str, seconds: float, addresses: int, users: Service
) -> dict[str, Any]:
    stop = asyncio.Event()
    answers: Counter[int] = Counter()
    tasks = [
        asyncio.create_task(_attacker(base, f"203.0.113.{n % addresses + 1}", stop, answers))
        for n in range(FLOOD)
    ]
    await asyncio.sleep(1.0)  # the flood is at full strength before anything is measured
    meter = _CpuWindow(users)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        watched = await asyncio.get_running_loop().run_in_executor(
            pool, _watch, base, name, password, seconds
        )
    cpu = meter.stop()
    stop.set()
    await asyncio.gather(*tasks)
    return {
        "flood_addresses": addresses,
        "flood_answers": dict(sorted(answers.items())),
        **watched,
        "users_cpu_cores": round(cpu["users"] / cpu["seconds"], 2),
        "generator_cpu_cores": round(cpu["generator"] / cpu["seconds"], 2),
        "load_average": os.getloadavg()[0],
    }


class _CpuWindow:
    """CPU seconds of the users service's processes and of this generator since construction."""

    def __init__(self, users: Service) -> None:
        self._pids = users.workers()
        self._start = self._now()

    def _now(self) -> dict[str, float]:
        mine = os.times()
        return {
            "users": sum(cpu_seconds(pid) for pid in self._pids),
            "generator": mine.user + mine.system,
            "seconds": time.monotonic(),
        }

    def stop(self) -> dict[str, float]:
        end = self._now()
        return {name: end[name] - self._start[name] for name in end}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the users service, e.g. PASSWORD_CHECK_NICENESS=0 (repeatable)",
    )
    args = parser.parse_args()
    cost = {**_production_settings(), **dict(item.split("=", 1) for item in args.set)}
    overrides = {"users": {**cost, "WORKERS": str(args.workers)}}
    with (
        tempfile.TemporaryDirectory() as root,
        LocalSystem(Path(root), services=("users",), overrides=overrides) as system,
    ):
        name, password = "flood-bench", "correct horse battery staple"
        system.create_user(name, password)
        base = system.url("users")
        process = system.processes["users"]
        users = Service(**{f.name: getattr(process, f.name) for f in dataclasses.fields(process)})
        result = {
            "settings": cost,
            "workers": args.workers,
            "capacity": asyncio.run(capacity(base, name, password, args.seconds, users)),
            "distributed_flood": asyncio.run(
                flood(base, name, password, args.seconds, FLOOD, users)
            ),
            "single_address_flood": asyncio.run(
                flood(base, name, password, args.seconds, 1, users)
            ),
            "users_rss_mb": [memory_of(pid) for pid in users.workers()],
        }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
