"""A users worker gives argon2's blocks back after its logins (users_service.heap): on a real
process at the production cost (19 MiB per hash), its resident memory after logins on both check
threads is within a fraction of one block of what it was before them. With
ARGON2_RELEASE_MEMORY=false (glibc's default behaviour) the same logins leave at least one block
resident: the control, which shows that the measurement sees a kept block."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit import DatabaseFactory, ServiceProcess
from users_service.heap import is_glibc
from users_service.main import MIGRATIONS_DIR
from users_service.settings import UsersSettings

from .conftest import add_account

pytestmark = pytest.mark.skipif(not is_glibc(), reason="glibc's malloc only (Linux)")

NAME, PASSWORD = "memory", "correct horse battery staple"
BLOCK_MIB = 19456 / 1024
CLIENTS, LOGINS_EACH = 4, 4

SERVER_ENV = {
    "WORKERS": "1",  # the server process is the worker whose memory is read
    "ARGON2_TIME_COST": "2",
    "ARGON2_MEMORY_KIB": "19456",
    "ARGON2_PARALLELISM": "1",
    # Every login is checked, none refused for time or per address: both check threads hash.
    "PASSWORD_CHECK_WAIT_SECONDS": "60",
    "PASSWORD_CHECKS_PER_CLIENT": "100",
}


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.fixture
def database_url(database_factory: DatabaseFactory, keys_dir: Path) -> str:
    url = database_factory.fresh("sqlite", MIGRATIONS_DIR)
    # Cheap hashing for the account itself: only the server's logins are measured.
    settings = UsersSettings(
        database_url=url, jwt_keys_dir=keys_dir, argon2_time_cost=1, argon2_memory_kib=1024
    )
    add_account(settings, NAME, PASSWORD)
    return url


def start_server(
    database_url: str, keys_dir: Path, tmp_path: Path, release: bool
) -> Iterator[ServiceProcess]:
    server = ServiceProcess.serving(
        "users",
        {
            **SERVER_ENV,
            "ARGON2_RELEASE_MEMORY": str(release).lower(),
            "DATABASE_URL": database_url,
            "JWT_KEYS_DIR": str(keys_dir),
        },
        tmp_path / f"users-{release}.log",
    ).start()
    yield server
    assert server.stop() == 0, server.logs()


async def growth_over_logins(server: ServiceProcess) -> float:
    """MiB of resident memory gained over CLIENTS x LOGINS_EACH logins, after one login."""
    assert server.process is not None
    pid = server.process.pid

    async def log_in(client: httpx.AsyncClient) -> None:
        answer = await client.post("/api/login/", json={"username": NAME, "password": PASSWORD})
        assert answer.status_code == 200, answer.text

    async def client_logging_in() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            for _ in range(LOGINS_EACH):
                await log_in(client)

    # Whatever a first login sets up once (connections, keys, caches) is in the baseline.
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        await log_in(client)
    before = resident_mib(pid)
    await asyncio.gather(*(client_logging_in() for _ in range(CLIENTS)))
    return resident_mib(pid) - before


@pytest.fixture
def releasing(database_url: str, keys_dir: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    yield from start_server(database_url, keys_dir, tmp_path, release=True)


@pytest.fixture
def keeping(database_url: str, keys_dir: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    yield from start_server(database_url, keys_dir, tmp_path, release=False)


async def test_argon2_blocks_go_back_to_the_system_after_the_logins(
    releasing: ServiceProcess,
) -> None:
    growth = await growth_over_logins(releasing)
    # Kept, a block is 19 MiB; what a worker allocates otherwise over 16 logins is a few.
    assert growth < BLOCK_MIB / 2, f"{growth:.1f} MiB more resident after the logins"


async def test_glibcs_default_keeps_a_block_per_check_thread(keeping: ServiceProcess) -> None:
    growth = await growth_over_logins(keeping)
    # The baseline's login kept the first thread's block; the second thread adds its own.
    assert growth > BLOCK_MIB * 0.9, f"only {growth:.1f} MiB more resident after the logins"
