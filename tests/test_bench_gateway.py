"""bench/gateway.py's parts that need no Docker: reading a control group's CPU (this test's
own, on the real /sys/fs/cgroup), the compose secret's database URL turned into one this
machine reaches, and the idle system's CPU taken out of a request's. The whole tool runs
against a compose project (bench/README.md, "Through the gateway")."""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gateway() -> ModuleType:
    # The benchmark's modules import each other by name from bench/, as when run as scripts.
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module("gateway")
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_a_cgroup_reader_counts_the_cpu_this_process_burns(gateway: ModuleType) -> None:
    read = gateway.cgroup_cpu(os.getpid())
    # The wall-clock span encloses both reads: on a busy machine (the group may be the root
    # one) a read delayed after a clock reading would count CPU outside the span.
    start = time.monotonic()
    before_group, before_self = read(), time.process_time()
    while time.process_time() - before_self < 0.3:
        sum(range(10_000))
    burned = time.process_time() - before_self
    used = read() - before_group
    wall = time.monotonic() - start
    # The group holds this process (and maybe others): at least what it burned, and no more
    # than every core for the whole time, in seconds.
    assert 0.9 * burned <= used <= (os.cpu_count() or 1) * wall + 0.05


def test_the_database_url_points_at_the_postgres_container(
    gateway: ModuleType, tmp_path: Path
) -> None:
    for service in ("thoughts", "users"):
        url = f"postgresql+asyncpg://{service}:s3cr%2Ft@postgres:5432/{service}\n"
        (tmp_path / f"{service}_database_url").write_text(url)
    postgres = gateway.Container("postgres", "abc", "172.18.0.4", 1, {})
    urls = gateway.database_urls({"postgres": postgres}, tmp_path)
    assert urls == {
        "thoughts": "postgresql://thoughts:s3cr%2Ft@172.18.0.4:5432/thoughts",
        "users": "postgresql://users:s3cr%2Ft@172.18.0.4:5432/users",
    }


def test_the_idle_systems_cpu_is_taken_out_per_request(gateway: ModuleType) -> None:
    result = gateway.Result(
        name="healthz",
        url="http://x/healthz",
        rps=500.0,
        p50_ms=1,
        p90_ms=1,
        p99_ms=1,
        max_ms=1,
        requests=5000,
        non_2xx=0,
        socket_errors=0,
        timeouts=0,
        statuses={"200": 5000},
        cpu_us_per_request={"frontend": 300.0, "gateway": 40.0, "wrk": 50.0},
    )
    # 25,000 us per second of probes in the frontend is 50 us of each of 500 requests a second.
    idle = {"frontend": 25_000.0, "gateway": 5_000.0}
    assert gateway.without_idle(result, idle) == {"frontend": 250.0, "gateway": 30.0, "wrk": 50.0}


def test_logins_run_within_one_addresss_limit_both_ways(gateway: ModuleType) -> None:
    """Through the gateway every login comes from one address; the users service refuses that
    address's logins beyond PASSWORD_CHECKS_PER_CLIENT at once (503), so the gateway's run would
    measure refusals that the direct run, with login.lua's many addresses, never gets."""
    from users_service.settings import UsersSettings

    login = gateway.Scenario("login", "users", "/api/login/", connections=4)
    per_address = UsersSettings.model_fields["password_checks_per_client"].default
    assert gateway.same_work_both_ways(login).connections == per_address
    healthz = gateway.Scenario("healthz", "thoughts", "/healthz")
    assert gateway.same_work_both_ways(healthz).service == "frontend"
    other = gateway.Scenario("thought by id", "thoughts", "/api/thoughts/1/")
    assert gateway.same_work_both_ways(other) == other
