"""testkit.ServiceProcess's start-up wait (what devtools.testing.LocalSystem and the services'
own process tests use): a process that exits fails the wait at once, one that keeps running is
waited for up to TEST_SERVICE_START_SECONDS (180 s by default), and both errors show what the
process printed."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from testkit import ServiceProcess, free_port
from testkit.processes import (
    DEFAULT_START_SECONDS,
    PortPicker,
    ephemeral_start,
    port_slice,
    start_seconds,
)


def process(tmp_path: Path, code: str) -> ServiceProcess:
    port = free_port()
    return ServiceProcess(
        name="fake",
        argv=[sys.executable, "-u", "-c", code],
        env={},
        port=port,
        log_path=tmp_path / f"fake-{port}.log",
    )


def test_a_process_that_exits_fails_the_wait_at_once_with_what_it_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SERVICE_START_SECONDS", "120")
    fake = process(tmp_path, "print('configuration error: DATABASE_URL is not set'); exit(3)")
    started = time.monotonic()

    with pytest.raises(RuntimeError) as raised:
        fake.start()

    assert time.monotonic() - started < 60  # not the deadline: the exit is seen at once
    assert "fake exited with code 3 before answering /healthz" in str(raised.value)
    assert "configuration error: DATABASE_URL is not set" in str(raised.value)


def test_a_running_process_is_waited_for_until_the_deadline_then_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SERVICE_START_SECONDS", "2")
    fake = process(tmp_path, "import time; print('importing slowly'); time.sleep(120)")
    started = time.monotonic()

    with pytest.raises(RuntimeError) as raised:
        fake.start()

    assert time.monotonic() - started >= 2
    assert "still running but did not answer /healthz within 2s" in str(raised.value)
    assert "TEST_SERVICE_START_SECONDS" in str(raised.value)
    assert "importing slowly" in str(raised.value)
    assert fake.process is not None
    assert fake.process.poll() is not None  # stopped, not left behind


def test_the_wait_is_generous_by_default_and_refuses_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TEST_SERVICE_START_SECONDS", raising=False)
    assert start_seconds() == DEFAULT_START_SECONDS == 180
    monkeypatch.setenv("TEST_SERVICE_START_SECONDS", "soon")
    with pytest.raises(ValueError, match="TEST_SERVICE_START_SECONDS='soon'"):
        start_seconds()


def test_free_ports_come_from_below_the_ephemeral_range_one_slice_per_test_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    slices = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append(port_slice())

    assert set(slices[0]).isdisjoint(slices[1])
    assert min(slices[0]) >= 1024
    assert max(slices[1]) < ephemeral_start()  # where bind(0) and connect() take theirs


def test_a_picker_hands_out_every_port_of_its_slice_once_and_skips_a_bound_one() -> None:
    ports = sorted(free_port() for _ in range(8))  # free now, and never handed out again
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", ports[3]))
        taken.listen()
        picker = PortPicker(ports)
        handed = [picker() for _ in range(7)]

    assert sorted(handed) == [port for port in ports if port != ports[3]]


def test_a_picker_with_nothing_free_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"no free port in {port}-{port}"):
            PortPicker(range(port, port + 1))()
