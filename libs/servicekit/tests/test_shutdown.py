"""Graceful shutdown of a real server process on SIGTERM: readiness goes false first, the
server keeps serving through the drain, in-flight requests finish, the process exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from servicekit import server as server_module
from servicekit.lifecycle import is_shutting_down
from servicekit.limits import RequestLimits
from servicekit.server import DrainingServer
from servicekit.settings import ServiceSettings
from testkit import DatabaseFactory, ServiceProcess


@pytest.fixture
def start_example(
    database_factory: DatabaseFactory, example: Any, example_process: Callable[..., ServiceProcess]
) -> Callable[..., ServiceProcess]:
    """Starts `run_example.py` (servicekit.server.serve) with a drain time, on a migrated DB."""
    # Migrated here, not in the async test: Alembic's env runs its own event loop.
    database_url = database_factory.fresh("sqlite", example.MIGRATIONS_DIR)

    def start(drain_seconds: float, workers: int = 1) -> ServiceProcess:
        return example_process(str(drain_seconds), str(workers), env={"DATABASE_URL": database_url})

    return start


async def test_sigterm_drains_then_finishes_in_flight_requests_and_exits_0(
    start_example: Any,
) -> None:
    service = start_example(drain_seconds=1.0)
    assert service.process is not None
    async with (
        httpx.AsyncClient(base_url=service.url, timeout=10) as slow_client,
        httpx.AsyncClient(base_url=service.url, timeout=5) as probe,
    ):
        assert (await probe.get("/readyz")).status_code == 200
        slow = asyncio.create_task(slow_client.get("/slow", params={"seconds": 1.5}))
        await _wait_for_log(service, '"message":"slow request started"')

        service.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        draining = await _wait_for_status(probe, "/readyz", 503)
        # Still serving during the drain: the load balancer sees "not ready", not a refusal.
        still_alive = await probe.get("/healthz")
        slow_response = await slow

    assert draining.headers["content-type"] == "application/problem+json"
    assert draining.json()["checks"]["shutdown"] == "in progress"
    assert still_alive.status_code == 200
    assert slow_response.status_code == 200
    assert slow_response.json() == {"slept": 1.5}
    returncode = await asyncio.to_thread(service.process.wait, 5)
    elapsed = time.monotonic() - signalled
    assert returncode == 0, service.logs()
    # At least the drain; the upper bound only catches a hang (the machine may be busy).
    assert 1.0 <= elapsed < 20.0
    assert '"message":"shutdown requested; draining for 1.0s"' in service.logs()


async def test_every_worker_of_a_multi_worker_server_drains_on_sigterm(start_example: Any) -> None:
    drain = 2.0
    service = start_example(drain_seconds=drain, workers=2)
    assert service.process is not None
    # Both workers up: each has answered /readyz 200 on a connection of its own.
    ready = await _answers_per_worker(service.url, within=30.0, until=lambda a: a["/readyz"] == 200)
    assert len(ready) == 2
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as slow_client:
        slow = asyncio.create_task(slow_client.get("/slow", params={"seconds": drain + 0.5}))
        await _wait_for_log(service, '"message":"slow request started"')

        service.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # New connections during the drain: every worker is "not ready" yet still serves.
        draining = await _answers_per_worker(
            service.url, within=drain, until=lambda a: a["/readyz"] == 503
        )
        seen_within = time.monotonic() - signalled
        slow_response = await slow

    assert set(draining) == set(ready), "a worker never reported not ready"
    assert seen_within < drain, "the workers turned not ready only after the drain"
    for answers in draining.values():
        # Before its own 503 a worker may still say 200: the signal takes a moment to arrive.
        assert answers[-1]["/items/7"] == 200
        assert all(a["/items/7"] == 200 for a in answers), answers
    assert slow_response.status_code == 200
    returncode = await asyncio.to_thread(service.process.wait, 10)
    elapsed = time.monotonic() - signalled
    assert returncode == 0, service.logs()
    assert drain <= elapsed < 25.0
    assert service.logs().count('"message":"shutdown requested; draining for 2.0s"') == 2


async def _answers_per_worker(
    url: str, *, within: float, until: Any
) -> dict[int, list[dict[str, int]]]:
    """Asks /worker, /readyz and /items/7 on fresh connections (the kernel spreads those over
    the workers) until every worker seen so far has given an answer `until` accepts and two
    workers have been seen; the answers by worker pid, in order."""
    answers: dict[int, list[dict[str, int]]] = {}
    deadline = time.monotonic() + within
    while True:
        # One client, one connection: the three requests reach the same worker.
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            pid = (await client.get("/worker")).json()["pid"]
            answer = {p: (await client.get(p)).status_code for p in ("/readyz", "/items/7")}
        answers.setdefault(pid, []).append(answer)
        if len(answers) == 2 and all(until(a[-1]) for a in answers.values()):
            return answers
        assert time.monotonic() < deadline, f"not every worker got there in {within}s: {answers}"


def make_server(drain_seconds: float) -> DrainingServer:
    server = DrainingServer(uvicorn.Config("unused:app", log_config=None))
    server.drain_seconds = drain_seconds
    return server


def test_without_drain_a_signal_stops_at_once_and_will_exit_0() -> None:
    server = make_server(0.0)

    server.handle_exit(signal.SIGTERM, None)

    assert is_shutting_down()
    assert (server.should_exit, server.force_exit) == (True, False)
    # uvicorn re-raises the signals it recorded once it has stopped: the process would then die
    # "killed by SIGTERM" (exit 143) instead of exiting 0 after a graceful stop.
    assert server._captured_signals == []


def test_with_drain_readiness_goes_first_and_the_stop_follows() -> None:
    server = make_server(0.3)

    started = time.monotonic()
    server.handle_exit(signal.SIGTERM, None)

    assert is_shutting_down()
    assert server.should_exit is False
    while not server.should_exit:
        assert time.monotonic() - started < 3.0, "the drain never ended"
        time.sleep(0.01)
    assert time.monotonic() - started >= 0.3
    assert server.force_exit is False
    assert server._captured_signals == []


def test_a_second_sigterm_while_draining_changes_nothing_and_ctrl_c_stops_now() -> None:
    server = make_server(30.0)

    server.handle_exit(signal.SIGTERM, None)
    server.handle_exit(signal.SIGTERM, None)  # e.g. the whole process group was signalled
    assert server.should_exit is False
    server.handle_exit(signal.SIGINT, None)

    assert (server.should_exit, server.force_exit) == (True, False)


def test_ctrl_c_skips_the_drain() -> None:
    server = make_server(30.0)

    server.handle_exit(signal.SIGINT, None)

    assert is_shutting_down()
    assert (server.should_exit, server.force_exit) == (True, False)


def test_ctrl_c_once_stopping_forces_the_exit() -> None:
    server = make_server(0.0)

    server.handle_exit(signal.SIGINT, None)
    assert (server.should_exit, server.force_exit) == (True, False)
    server.handle_exit(signal.SIGINT, None)

    assert server.force_exit is True


def test_serve_settings_runs_the_server_with_the_service_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(server_module, "serve", lambda app, **options: calls.append((app, options)))
    settings = ServiceSettings(
        host="10.1.2.3",
        port=8123,
        workers=3,
        shutdown_drain_seconds=2.5,
        log_level="warning",
        max_body_bytes=4096,
        max_header_count=20,
    )

    server_module.serve_settings("example_service:create_app", settings)

    assert calls == [
        (
            "example_service:create_app",
            {
                "host": "10.1.2.3",
                "port": 8123,
                "workers": 3,
                "drain_seconds": 2.5,
                "log_level": "warning",
                "internal_port": None,
                "unix_socket": None,
                "limits": RequestLimits(
                    max_header_bytes=32 * 1024,
                    max_header_count=20,
                    max_body_bytes=4096,
                    max_form_fields=64,
                ),
            },
        )
    ]


async def _wait_for_log(service: ServiceProcess, text: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while text not in service.logs():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{service.logs()}"
        await asyncio.sleep(0.02)


async def _wait_for_status(
    client: httpx.AsyncClient, path: str, status: int, within: float = 1.0
) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        response = await client.get(path)
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, f"{path} still {response.status_code}"
        await asyncio.sleep(0.02)


def test_a_second_server_on_a_served_port_fails_instead_of_sharing_it(
    start_example: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    # Workers share their port through SO_REUSEPORT, and so does every service of ours: a second
    # multi-worker server whose bind set it too would join the first one's group and take some
    # of its connections. Its first bind is without SO_REUSEPORT, so it fails at once. (The
    # first supervisor also holds its ports from that check until it stops, which closes the
    # window before its workers bind; that window is not reproduced here.)
    first = start_example(drain_seconds=0, workers=2)
    second = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "run_example.py"), str(first.port), "0", "2"],
        env={**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0
    assert f"cannot listen on 127.0.0.1:{first.port}" in second.stderr + second.stdout
    with httpx.Client(base_url=first.url) as client:
        assert client.get("/healthz").status_code == 200
