"""The server's Unix socket (`UNIX_SOCKET`), on real server processes: it serves what the main
port serves, every worker of a multi-worker server accepts from it, its file is open to the
service's user and group only, a stale file is replaced and a live one is not, the drain on
SIGTERM keeps it serving and the exit removes it, and its peers' X-Forwarded-For is believed
(the gateway's way in) where a TCP peer's is only from FORWARDED_ALLOW_IPS."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from servicekit.server import UNIX_SOCKET_MODE
from testkit import DatabaseFactory, ServiceProcess


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short path (sockaddr_un holds 107 bytes; pytest's tmp_path can be longer) that other
    users may enter, so that the permissions test reaches the socket's own mode."""
    folder = Path(tempfile.mkdtemp(prefix="uds-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def start_example(
    database_factory: DatabaseFactory, example: Any, example_process: Callable[..., ServiceProcess]
) -> Callable[..., ServiceProcess]:
    database_url = database_factory.fresh("sqlite", example.MIGRATIONS_DIR)

    def start(path: Path, *, workers: int = 1, drain: float = 0.0, **env: str) -> ServiceProcess:
        env = {"DATABASE_URL": database_url, "UNIX_SOCKET": str(path), **env}
        return example_process(str(drain), str(workers), env=env)

    return start


def over_socket(path: Path) -> httpx.Client:
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(path)), base_url="http://example", timeout=10
    )


def test_every_worker_serves_the_unix_socket_beside_the_tcp_port(
    start_example: Callable[..., ServiceProcess], socket_dir: Path
) -> None:
    path = socket_dir / "example.sock"
    service = start_example(path, workers=2)

    assert stat.S_ISSOCK(path.lstat().st_mode)
    assert stat.S_IMODE(path.lstat().st_mode) == UNIX_SOCKET_MODE == 0o660
    workers: set[int] = set()
    deadline = time.monotonic() + 30
    while len(workers) < 2:
        assert time.monotonic() < deadline, f"only workers {workers} answered on the socket"
        with over_socket(path) as client:  # a new connection each time
            workers.add(client.get("/worker").json()["pid"])
    with over_socket(path) as client:
        assert client.get("/items/7").status_code == 200
        assert client.get("/readyz").status_code == 200
    assert httpx.get(f"{service.url}/items/7", timeout=10).status_code == 200


def serve_socket_only(path: Path) -> subprocess.CompletedProcess[str]:
    """A server on the Unix socket path alone, in a process of its own: how it ends."""
    return subprocess.run(
        [sys.executable, "-I", "-c", _SERVE_SOCKET_ONLY, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_stale_socket_file_is_replaced_and_a_live_one_is_not(
    start_example: Callable[..., ServiceProcess], socket_dir: Path
) -> None:
    path = socket_dir / "example.sock"
    # What a killed server leaves: the file, and nothing listening behind it.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    service = start_example(path)
    with over_socket(path) as client:
        assert client.get("/worker").json()["pid"] == service.process.pid  # type: ignore[union-attr]

    second = serve_socket_only(path)
    assert second.returncode != 0
    assert "another server listens on it" in second.stderr
    with over_socket(path) as client:  # the first one's socket, untouched
        assert client.get("/healthz").status_code == 200


def test_a_file_that_is_not_a_socket_is_left_alone(socket_dir: Path) -> None:
    path = socket_dir / "example.sock"
    path.write_text("someone's data")
    refused = serve_socket_only(path)
    assert refused.returncode != 0
    assert "exists and is not a socket" in refused.stderr
    assert path.read_text() == "someone's data"


# Only as far as binding: the path's checks come before the app is loaded.
_SERVE_SOCKET_ONLY = """
import sys
from pathlib import Path
from servicekit.server import unix_listening_socket
with unix_listening_socket(Path(sys.argv[1])):
    pass
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as other users needs root")
def test_only_the_services_user_and_group_may_connect(
    start_example: Callable[..., ServiceProcess], socket_dir: Path
) -> None:
    path = socket_dir / "example.sock"
    start_example(path)
    owner = path.lstat()
    connect = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"

    def connect_as(uid: int, groups: list[int]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/usr/bin/python3", "-I", "-c", connect, str(path)],
            user=uid,
            group=65534,
            extra_groups=groups,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    stranger = connect_as(65534, [])
    assert stranger.returncode != 0
    assert "PermissionError" in stranger.stderr
    # The gateway's case: another user, given the service's group (compose's group_add).
    member = connect_as(65534, [owner.st_gid])
    assert member.returncode == 0, member.stderr


def test_the_drain_keeps_the_socket_serving_and_the_exit_removes_it(
    start_example: Callable[..., ServiceProcess], socket_dir: Path
) -> None:
    path = socket_dir / "example.sock"
    drain = 3.0
    service = start_example(path, workers=2, drain=drain)
    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    answers: list[tuple[int, int]] = []
    while (503, 200) not in answers:
        # Inside the drain (a busy machine may take a moment to deliver the signal).
        assert time.monotonic() - signalled < drain - 0.5, answers
        with over_socket(path) as client:
            answers.append((client.get("/readyz").status_code, client.get("/items/7").status_code))
        time.sleep(0.05)
    # Not ready, still serving: the gateway takes it out before any connection is refused.
    assert all(item == 200 for _ready, item in answers), answers
    assert service.process.wait(30) == 0, service.logs()
    assert not path.exists()


SPOOFED = "203.0.113.66"


def test_x_forwarded_for_is_believed_on_the_socket_and_on_tcp_only_from_allowed_peers(
    start_example: Callable[..., ServiceProcess], socket_dir: Path
) -> None:
    path = socket_dir / "example.sock"
    # TCP trusts no peer here: the direct path must not believe the header.
    service = start_example(path, FORWARDED_ALLOW_IPS="10.255.0.1")
    direct = httpx.get(f"{service.url}/whoami", headers={"X-Forwarded-For": SPOOFED}, timeout=10)
    assert direct.json()["client"] == "127.0.0.1"
    with over_socket(path) as client:
        # The gateway's own line is the last: an address the client wrote before it is not.
        forwarded = {"X-Forwarded-For": f"{SPOOFED}, 198.51.100.7", "X-Forwarded-Proto": "https"}
        assert client.get("/whoami", headers=forwarded).json() == {
            "client": "198.51.100.7",
            "scheme": "https",
        }
        # Without the header, a socket peer has no address at all (the gateway always sends one).
        assert client.get("/whoami").json()["client"] is None
