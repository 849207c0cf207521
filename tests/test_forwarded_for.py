"""Whose address a service sees (issue 14 item 13): `X-Forwarded-For` is believed only from the
peers in FORWARDED_ALLOW_IPS (uvicorn's setting; `make run` and the tests: 127.0.0.1) or from a
peer on the service's Unix socket (the gateway's way in under compose), and the gateway hands on
the address it saw, never one the client wrote itself. Real processes: the kit's example service
and HAProxy running deploy/gateway/haproxy.cfg, as compose runs it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from frontend_service.main import create_app as create_frontend
from frontend_service.settings import FrontendSettings
from testkit import (
    DatabaseFactory,
    ProcessGroup,
    ServiceProcess,
    StartedApps,
    csrf_token,
    free_port,
    need,
)
from users_service.main import MIGRATIONS_DIR as USERS_MIGRATIONS
from users_service.signing import generate_key

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "libs/servicekit/tests"
HAPROXY_CONFIG = ROOT / "deploy/gateway/haproxy.cfg"
SPOOFED = "203.0.113.66"
VISITOR = "198.51.100.23"


@pytest.fixture
def start_example(
    database_factory: DatabaseFactory, tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    group = ProcessGroup("example", tmp_path)
    database_url = database_factory.fresh("sqlite", EXAMPLE / "example_migrations")

    def start(**env: str) -> ServiceProcess:
        return group.start(
            lambda port: [sys.executable, str(EXAMPLE / "run_example.py"), str(port), "0"],
            {"DATABASE_URL": database_url, "PYTHONPATH": str(EXAMPLE), **env},
        )

    yield start
    group.stop_all()


def whoami(url: str, **headers: str) -> str:
    client: str = httpx.get(f"{url}/whoami", headers=headers, timeout=10).json()["client"]
    return client


def test_x_forwarded_for_is_believed_only_from_forwarded_allow_ips(
    start_example: Callable[..., ServiceProcess],
) -> None:
    trusting = start_example(FORWARDED_ALLOW_IPS="127.0.0.1")  # the default
    assert whoami(trusting.url, **{"X-Forwarded-For": SPOOFED}) == SPOOFED
    # Several hops: the last address no trusted proxy vouches for is the caller.
    assert whoami(trusting.url, **{"X-Forwarded-For": f"198.51.100.7, {SPOOFED}"}) == SPOOFED
    distrusting = start_example(FORWARDED_ALLOW_IPS="10.255.0.1")
    assert whoami(distrusting.url, **{"X-Forwarded-For": SPOOFED}) == "127.0.0.1"


@pytest.fixture
def gateway_to(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """`gateway_to(address)`: HAProxy with every server at `address` (host:port, or
    unix@path as compose gives it); its URL once it answers."""
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if haproxy is None:
        need("HAProxy is not installed (apt-get install haproxy)")
    gateways: list[subprocess.Popen[bytes]] = []

    def start(address: str) -> str:
        port = free_port()
        # Every server of the file points at the one backend process.
        names = set(re.findall(r'"\$\{([A-Z0-9_]+)\}"', HAPROXY_CONFIG.read_text()))
        env = {name: address for name in names}
        env |= {
            "GATEWAY_BIND": f"127.0.0.1:{port}",
            "STATS_BIND": f"127.0.0.1:{free_port()}",
            "RUNTIME_SOCKET": str(tmp_path / "haproxy.sock"),
        }
        log = (tmp_path / "haproxy.log").open("wb")
        gateway = subprocess.Popen(
            [str(haproxy), "-db", "-f", str(HAPROXY_CONFIG)],
            env={"PATH": "/usr/sbin:/usr/bin:/bin", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        gateways.append(gateway)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert gateway.poll() is None, (tmp_path / "haproxy.log").read_text()
            try:
                if httpx.get(f"{url}/whoami", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the gateway never answered")

    yield start
    for gateway in gateways:
        gateway.terminate()
        gateway.wait(10)


def test_the_gateway_hands_on_the_address_it_saw_not_the_clients_own(
    start_example: Callable[..., ServiceProcess], gateway_to: Callable[[str], str]
) -> None:
    """Compose trusted the header from the gateway's network: before, a client that wrote
    `X-Forwarded-For` itself was believed through the gateway (and escaped the per-address
    login throttle with a new address per guess)."""
    service = start_example(FORWARDED_ALLOW_IPS="127.0.0.1")
    gateway = gateway_to(f"127.0.0.1:{service.port}")
    assert whoami(gateway, **{"X-Forwarded-For": SPOOFED}) == "127.0.0.1"
    assert whoami(gateway) == "127.0.0.1"


def test_through_the_unix_socket_the_gateway_is_believed_and_tcp_peers_are_not(
    start_example: Callable[..., ServiceProcess], gateway_to: Callable[[str], str]
) -> None:
    """Compose's shape: the gateway reaches the service over its Unix socket (UNIX_SOCKET), and
    the service believes no TCP peer's header (FORWARDED_ALLOW_IPS names none here)."""
    folder = Path(tempfile.mkdtemp(prefix="uds-", dir="/tmp"))  # a path short enough to bind
    try:
        path = folder / "example.sock"
        service = start_example(FORWARDED_ALLOW_IPS="10.255.0.1", UNIX_SOCKET=str(path))
        gateway = gateway_to(f"unix@{path}")
        # From a loopback address of its own: the one the gateway saw and hands on.
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport, timeout=10) as client:
            through = client.get(f"{gateway}/whoami", headers={"X-Forwarded-For": SPOOFED})
            assert through.json()["client"] == "127.0.0.2"
            direct = client.get(f"{service.url}/whoami", headers={"X-Forwarded-For": SPOOFED})
            assert direct.json()["client"] == "127.0.0.2"  # its own address, not the header's
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def users_on_a_socket(
    database_factory: DatabaseFactory, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, Path]]:
    """A users process that also listens on a Unix socket and believes no TCP peer's header
    (FORWARDED_ALLOW_IPS names none here), as compose runs it; and its socket."""
    keys = tmp_path / "keys"
    keys.mkdir()
    generate_key(keys, "test-key-1")
    folder = Path(tempfile.mkdtemp(prefix="uds-", dir="/tmp"))  # a path short enough to bind
    users = ServiceProcess.serving(
        "users",
        {
            "DATABASE_URL": database_factory.fresh("sqlite", USERS_MIGRATIONS),
            "JWT_KEYS_DIR": str(keys),
            "UNIX_SOCKET": str(folder / "users.sock"),
            "FORWARDED_ALLOW_IPS": "10.255.0.1",
            "LOGIN_MAX_FAILURES_PER_USERNAME": "3",
        },
        tmp_path / "users.log",
    )
    users.start()
    try:
        yield users, folder / "users.sock"
    finally:
        users.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def test_the_frontend_hands_the_visitors_address_to_users_over_its_socket_only(
    users_on_a_socket: tuple[ServiceProcess, Path], started_apps: StartedApps
) -> None:
    """Compose's shape for the frontend's calls to users (USERS_UNIX_SOCKETS): users counts
    failed logins per visitor address, which it takes from the frontend's X-Forwarded-For over
    its Unix socket, and from no TCP peer. Before, compose's users believed the header from any
    TCP peer: another container, or any process of the host through users' published port,
    could pick the address it was counted as."""
    users, socket = users_on_a_socket
    settings = FrontendSettings(
        # Resolves nowhere: every call must go over the socket.
        users_url="http://users.invalid:8001",
        users_unix_sockets=str(socket),
        thoughts_url="http://thoughts.invalid:8000",
        cookie_secure=False,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        dependencies="",
    )
    name, password = f"visitor-{uuid.uuid4().hex[:8]}", "correct horse battery"
    async with httpx.AsyncClient(base_url=users.url, timeout=10) as api:
        created = await api.post("/admin/users/", json={"username": name, "password": password})
        assert created.status_code == 201, created.text
        site = await started_apps.client(
            create_frontend(settings),
            base_url="http://frontend.test",
            client_address=(VISITOR, 4321),
        )

        async def log_in(secret: str) -> httpx.Response:
            page = await site.get("/login")
            form = {"username": name, "password": secret, "csrf_token": csrf_token(page.text)}
            return await site.post("/login", data=form)

        assert [(await log_in("wrong")).status_code for _ in range(3)] == [400, 400, 400]
        throttled = await log_in(password)
        assert throttled.status_code == 429, throttled.text  # the visitor's address counted
        # Over TCP the header is not believed: this caller is 127.0.0.1, with no failures.
        direct = await api.post(
            "/api/login/",
            json={"username": name, "password": password},
            headers={"X-Forwarded-For": VISITOR},
        )
        assert direct.status_code == 200, direct.text
