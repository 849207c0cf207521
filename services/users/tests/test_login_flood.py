"""A flood of wrong-password logins against a real users process (users_service.check_queue): a
good client's login goes ahead of the flood's queued checks, whether the flood comes from many
addresses or from one. Observed as an order (how many of the flood's checks were answered while
the good login was in progress), never as a time; bench/login_flood.py measures the times."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit import DatabaseFactory, ServiceProcess
from users_service.main import MIGRATIONS_DIR
from users_service.settings import UsersSettings

from .conftest import add_account

FLOOD = 64
NAME, PASSWORD = "bruce", "correct horse battery staple"
# A quarter of the flood: far below the FLOOD minus the cores a login in arrival order waits for.
OVERTAKEN_AT_MOST = FLOOD // 4

# The production argon2id cost, one worker (its queue is the one observed), a wait long enough
# that no check of the flood is refused for time: the queue is as deep as the flood makes it,
# and a login that took its place in arrival order would wait behind all of it. The throttle's
# per-address limit is out of the way: the queue is what is tested.
SERVER_ENV = {
    "WORKERS": "1",
    "ARGON2_TIME_COST": "2",
    "ARGON2_MEMORY_KIB": "19456",
    "ARGON2_PARALLELISM": "1",
    "PASSWORD_CHECK_WAIT_SECONDS": "60",
    "PASSWORD_CHECKS_PER_CLIENT": "2",
    "LOGIN_MAX_FAILURES_PER_ADDRESS": "100000",
}


@pytest.fixture
def users_server(
    database_factory: DatabaseFactory, keys_dir: Path, tmp_path: Path
) -> Iterator[ServiceProcess]:
    # SQLite: the queue is in front of the hashes, whatever database holds the accounts.
    database_url = database_factory.fresh("sqlite", MIGRATIONS_DIR)
    # The same argon2 parameters as the server's (pydantic turns the strings into numbers).
    argon2: dict[str, Any] = {
        name.lower(): value for name, value in SERVER_ENV.items() if name.startswith("ARGON2")
    }
    settings = UsersSettings(database_url=database_url, jwt_keys_dir=keys_dir, **argon2)
    add_account(settings, NAME, PASSWORD)
    server = ServiceProcess.serving(
        "users",
        {**SERVER_ENV, "DATABASE_URL": database_url, "JWT_KEYS_DIR": str(keys_dir)},
        tmp_path / "users.log",
    ).start()
    yield server
    assert server.stop() == 0, server.logs()


class Flood:
    """FLOOD clients, each logging in to unknown names with a wrong password, over and over."""

    def __init__(self, url: str, addresses: int) -> None:
        self.url = url
        self.addresses = addresses
        self.answers: Counter[int] = Counter()
        self.failed_addresses: set[str] = set()
        self.every_address_failed = asyncio.Event()
        self.stop = asyncio.Event()

    async def attacker(self, n: int) -> None:
        address = f"203.0.113.{n % self.addresses + 1}"
        async with httpx.AsyncClient(base_url=self.url, timeout=120) as client:
            guess = 0
            while not self.stop.is_set():
                guess += 1
                answer = await client.post(
                    "/api/login/",
                    json={"username": f"nobody-{n}-{guess}", "password": "wrong"},
                    headers={"X-Forwarded-For": address},
                )
                self.answers[answer.status_code] += 1
                if answer.status_code == 401:
                    self.failed_addresses.add(address)
                    if len(self.failed_addresses) == self.addresses:
                        self.every_address_failed.set()
                elif answer.status_code == 503:
                    # Comes back when told to: the test observes the queue's order, not how
                    # fast the event loop turns away clients that do not (bench/login_flood.py).
                    await asyncio.sleep(int(answer.headers["Retry-After"]))
                else:
                    raise AssertionError(f"the flood got {answer.status_code}: {answer.text}")


async def good_login_during(flood: Flood) -> tuple[int, int]:
    """The good client's status, and how many of the flood's checks ended (401) meanwhile."""
    tasks = [asyncio.create_task(flood.attacker(n)) for n in range(FLOOD)]
    try:
        await asyncio.wait_for(flood.every_address_failed.wait(), 240)
        async with httpx.AsyncClient(base_url=flood.url, timeout=120) as client:
            assert (await client.get("/healthz")).status_code == 200
            before = flood.answers[401]
            answer = await client.post(
                "/api/login/",
                json={"username": NAME, "password": PASSWORD},
                headers={"X-Forwarded-For": "192.0.2.200"},
            )
            overtaken = flood.answers[401] - before
    finally:
        flood.stop.set()
        await asyncio.gather(*tasks)
    return answer.status_code, overtaken


async def test_a_good_login_goes_ahead_of_a_flood_from_many_addresses(
    users_server: ServiceProcess,
) -> None:
    flood = Flood(users_server.url, addresses=FLOOD)
    status, overtaken = await good_login_during(flood)
    assert status == 200
    # In arrival order it would have waited for the whole queue (the flood less the cores).
    # Ahead of it, the checks running when it came; beside it, those on the other cores while
    # its own ran and while its request was read and its account looked up.
    assert overtaken <= OVERTAKEN_AT_MOST, (overtaken, flood.answers)
    assert flood.answers[401] > FLOOD  # the flood was served, only later


async def test_a_flood_from_one_address_holds_only_its_share_of_the_queue(
    users_server: ServiceProcess,
) -> None:
    flood = Flood(users_server.url, addresses=1)
    status, overtaken = await good_login_during(flood)
    assert status == 200
    assert overtaken <= OVERTAKEN_AT_MOST, (overtaken, flood.answers)
    # The address has PASSWORD_CHECKS_PER_CLIENT (2) checks in progress and the rest of its
    # logins are refused at once (without the limit, all 64 would wait their turn). A check
    # that ended (401) while the flood was still arriving freed its place for the next login:
    # on a slow machine the 64 requests take longer to arrive than one check. Without the
    # limit none is refused (all 64 are checked, 401).
    assert flood.answers[503] >= FLOOD - 2 - flood.answers[401], flood.answers
    assert flood.answers[503] >= FLOOD // 2, flood.answers
