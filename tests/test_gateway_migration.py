"""The gateway as a migration tool, proven against Debian's HAProxy and real service processes.

HAProxy runs deploy/gateway/haproxy.cfg (the file compose runs) with its addresses pointed at
service processes on free ports: two replicas each of users and thoughts (thoughts/new-1 with
two workers, so a multi-worker server's drain is on the line too), and a second deployment of both
standing in for the book's services as `legacy-1`. All share one PostgreSQL database per
service and one signing key, as a migrated system would. Under steady read and write load
through the gateway, each scenario must end with zero failed requests and every acknowledged
write (sign-ups, thoughts) in the database:

1. a rolling restart of each backend: SIGTERM one replica, start it again, wait until the
   gateway sees it up, then the other (`devtools.gateway.rolling_restart`);
2. the book's migration steps: the old deployment takes everything, then 5 %, 33 %, 50 % and
   100 % go to ours (`set_weights`), then the old one is drained and put in maintenance;
3. draining a server and removing it (stopped), then bringing it back.

Each test prints its request counts and timings (`pytest -s` shows them).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from devtools.gateway import (
    Replica,
    RuntimeAPI,
    drain,
    ready,
    rolling_restart,
    servers,
    set_weights,
    wait_until_up,
)
from testkit import (
    DatabaseFactory,
    ServiceProcess,
    free_port,
    need,
    postgres_available,
)

# Service processes restarted under load: minutes on a busy two-core machine, not seconds.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CONFIG = ROOT / "deploy/gateway/haproxy.cfg"
# Longer than the gateway needs to take a server out (checks every 1 s, fall 2: ~1.5 s).
DRAIN_SECONDS = "3"
PASSWORD = "migration-password-1"
CHEAP_ARGON2 = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024", "ARGON2_PARALLELISM": "1"}


def _haproxy() -> str:
    path = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if path is None:
        need("HAProxy is not installed (apt-get install haproxy)")
    assert path is not None
    return path


@dataclass
class Deployment:
    gateway_url: str
    api: RuntimeAPI
    processes: dict[str, ServiceProcess]  # "thoughts/new-1" -> its process
    database_urls: dict[str, str]  # service -> libpq URL
    haproxy: subprocess.Popen[bytes]
    haproxy_log: Path

    def replace(self, key: str) -> Callable[[], None]:
        """Stop (SIGTERM: the replica drains) and start again, ready."""

        def run() -> None:
            process = self.processes[key]
            assert process.stop(timeout=30) == 0, process.logs()
            process.start()
            process.wait_until("/readyz")

        return run


@pytest.fixture(scope="module")
def deployment(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    haproxy = _haproxy()
    reason = postgres_available()
    if reason:
        need(reason)
    from thoughts_service.main import MIGRATIONS_DIR as THOUGHTS_MIGRATIONS
    from users_service.main import MIGRATIONS_DIR as USERS_MIGRATIONS
    from users_service.signing import generate_key

    root = tmp_path_factory.mktemp("gateway-migration")
    keys = root / "keys"
    generate_key(keys, "k1")
    with ThreadPoolExecutor(1) as pool:  # Alembic runs an event loop of its own
        urls = {
            "users": pool.submit(database_factory.fresh, "postgresql", USERS_MIGRATIONS).result(),
            "thoughts": pool.submit(
                database_factory.fresh, "postgresql", THOUGHTS_MIGRATIONS
            ).result(),
        }
    gateway_port, stats_port, runtime_port = free_port(), free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    common = {"HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1", "SHUTDOWN_DRAIN_SECONDS": DRAIN_SECONDS}
    settings = {
        "users": {
            **CHEAP_ARGON2,
            "DATABASE_URL": urls["users"],
            "JWT_KEYS_DIR": str(keys),
            "SIGNUP_ENABLED": "true",
            "LOGIN_MAX_FAILURES_PER_ADDRESS": "10000",
        },
        "thoughts": {
            "DATABASE_URL": urls["thoughts"],
            # Through the gateway: keys keep coming while the users replicas restart.
            "AUTH_JWKS_URL": f"{gateway_url}/.well-known/jwks.json",
        },
    }
    # One multi-worker replica: its drain must hold as a single worker's does (fewer processes
    # than two of them, on a machine where every restart pays for the interpreters' start-up).
    workers = {"thoughts/new-1": {"WORKERS": "2"}}
    processes: dict[str, ServiceProcess] = {}
    for service in ("users", "thoughts"):
        for server in ("new-1", "new-2", "legacy-1"):
            key = f"{service}/{server}"
            processes[key] = ServiceProcess.serving(
                service,
                {**common, **settings[service], **workers.get(key, {})},
                root / f"{service}-{server}.log",
                name=f"{service}-{server}",
            )
    unused = {
        f"{route}_{n}": f"127.0.0.1:{free_port()}"
        for route in ("TASKS", "FRONTEND")
        for n in (1, 2)
    }
    env = {
        "GATEWAY_BIND": f"127.0.0.1:{gateway_port}",
        "STATS_BIND": f"127.0.0.1:{stats_port}",
        "RUNTIME_SOCKET": str(root / "haproxy.sock"),
        "RUNTIME_ADDRESS": f"127.0.0.1:{runtime_port}",
        **unused,
        "TASKS_LEGACY_1": f"127.0.0.1:{free_port()}",
        "FRONTEND_LEGACY_1": f"127.0.0.1:{free_port()}",
    }
    for key, process in processes.items():
        service, server = key.split("/")
        suffix = "LEGACY_1" if server == "legacy-1" else server.removeprefix("new-")
        env[f"{service.upper()}_{suffix}"] = f"127.0.0.1:{process.port}"
    haproxy_log = root / "haproxy.log"
    with haproxy_log.open("wb") as log_file:
        gateway = subprocess.Popen(
            [haproxy, "-db", "-f", str(HAPROXY_CONFIG)],
            env={"PATH": "/usr/sbin:/usr/bin:/bin", **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    system = Deployment(
        gateway_url=gateway_url,
        api=RuntimeAPI(env["RUNTIME_SOCKET"]),
        processes=processes,
        database_urls={
            s: u.replace("postgresql+asyncpg://", "postgresql://") for s, u in urls.items()
        },
        haproxy=gateway,
        haproxy_log=haproxy_log,
    )
    try:
        with ThreadPoolExecutor(len(processes)) as pool:
            # Generous: ten interpreters importing at once on a shared two-core machine.
            for started in [pool.submit(p.start, 180.0) for p in processes.values()]:
                started.result()
        for service in ("users", "thoughts"):
            for server in ("new-1", "new-2"):
                wait_until_up(system.api, service, server, timeout=30)
        yield system
    finally:
        for process in processes.values():
            process.stop()
        gateway.terminate()
        gateway.wait(10)


@dataclass
class Load:
    """Steady reads and writes through the gateway from a few threads, every answer counted."""

    url: str
    token: str
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    thoughts: dict[int, str] = field(default_factory=dict)  # acknowledged: id -> text
    users: list[str] = field(default_factory=list)  # acknowledged sign-ups
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _record(self, kind: str, ok: bool, detail: str) -> None:
        with self._lock:
            self.counts[f"{kind} {'ok' if ok else 'failed'}"] += 1
            if not ok and len(self.failures) < 20:
                self.failures.append(f"{kind}: {detail}")

    def _loop(self, kind: str, step: Callable[[httpx.Client], tuple[bool, str]]) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    ok, detail = step(client)
                except httpx.HTTPError as exc:
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                self._record(kind, ok, detail)
                self._stop.wait(0.01)  # a steady pace, not a flood of the shared machine

    def _read(self, client: httpx.Client) -> tuple[bool, str]:
        if self.thoughts and random.random() < 0.5:
            thought_id = random.choice(list(self.thoughts))
            answer = client.get(f"/api/thoughts/{thought_id}/")
        else:
            answer = client.get("/api/thoughts/", params={"limit": 5, "order": "desc"})
        return answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}"

    def _write(self, client: httpx.Client) -> tuple[bool, str]:
        text = f"migration {uuid.uuid4().hex}"
        answer = client.post(
            "/api/me/thoughts/",
            json={"text": text},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        if answer.status_code == 201:
            with self._lock:
                self.thoughts[answer.json()["id"]] = text
        return answer.status_code == 201, f"{answer.status_code} {answer.text[:200]}"

    def _sign_up(self, client: httpx.Client) -> tuple[bool, str]:
        username = f"m{uuid.uuid4().hex[:12]}"
        answer = client.post("/api/users/", json={"username": username, "password": PASSWORD})
        if answer.status_code == 201:
            with self._lock:
                self.users.append(username)
        return answer.status_code == 201, f"{answer.status_code} {answer.text[:200]}"

    def _login(self, client: httpx.Client) -> tuple[bool, str]:
        if not self.users:
            return True, ""
        answer = client.post(
            "/api/login/", json={"username": random.choice(self.users), "password": PASSWORD}
        )
        return answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}"

    def __enter__(self) -> Load:
        steps = {
            "read": self._read,
            "read ": self._read,  # two readers
            "write": self._write,
            "sign-up": self._sign_up,
            "login": self._login,
        }
        for kind, step in steps.items():
            thread = threading.Thread(target=self._loop, args=(kind.strip(), step), daemon=True)
            thread.start()
            self._threads.append(thread)
        # Steady before anything changes: every kind has been answered at least once.
        deadline = time.monotonic() + 30
        while not all(self.counts[f"{k} ok"] for k in ("read", "write", "sign-up", "login")):
            assert time.monotonic() < deadline, f"the load never got going: {self.failures}"
            self._stop.wait(0.05)
        return self

    def run_for(self, seconds: float) -> None:
        """Lets the load run on for a while (a measurement window, not a wait for an event)."""
        self._stop.wait(seconds)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind.endswith("failed"))


def _token(url: str) -> str:
    username = f"w{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=url, timeout=10) as client:
        created = client.post("/api/users/", json={"username": username, "password": PASSWORD})
        assert created.status_code == 201, created.text
        login = client.post("/api/login/", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
    token: str = login.json()["Authorized"].removeprefix("Bearer ")
    return token


def _assert_no_failure_and_every_write_kept(
    system: Deployment, load: Load, scenario: str, seconds: float
) -> None:
    print(
        f"\n{scenario}: {load.total} requests in {seconds:.1f}s, {load.failed} failed; "
        f"{dict(sorted(load.counts.items()))}; {len(load.thoughts)} thoughts and "
        f"{len(load.users)} sign-ups acknowledged"
    )
    assert load.failed == 0, load.failures
    with psycopg.connect(system.database_urls["thoughts"]) as connection:
        rows: dict[int, str] = dict(
            connection.execute(
                "SELECT id, text FROM thoughts WHERE id = ANY(%s)", (list(load.thoughts),)
            ).fetchall()
        )
    assert rows == load.thoughts
    with psycopg.connect(system.database_urls["users"]) as connection:
        kept = {
            name
            for (name,) in connection.execute(
                "SELECT username FROM users WHERE username = ANY(%s)", (load.users,)
            ).fetchall()
        }
    assert kept == set(load.users)


def _served(system: Deployment) -> dict[str, int]:
    return {
        f"{s.backend}/{s.name}": s.total
        for s in servers(system.api)
        if s.backend in {"users", "thoughts"}
    }


def _retried(system: Deployment) -> int:
    """Requests the gateway had to try again (a refused connection, an empty answer)."""
    found = servers(system.api)
    return sum(s.retries + s.redispatches for s in found if s.backend in {"users", "thoughts"})


def test_a_rolling_restart_of_each_backend_fails_no_request(deployment: Deployment) -> None:
    started = time.monotonic()
    timings = {}
    retried_before = _retried(deployment)
    with Load(deployment.gateway_url, _token(deployment.gateway_url)) as load:
        for backend in ("users", "thoughts"):
            began = time.monotonic()
            replicas = [
                Replica(server, deployment.replace(f"{backend}/{server}"))
                for server in ("new-1", "new-2")
            ]
            rolling_restart(deployment.api, backend, replicas, timeout=60, say=lambda _l: None)
            timings[backend] = round(time.monotonic() - began, 1)
    retried = _retried(deployment) - retried_before
    print(f"\nrolling restarts took {timings} (s); {retried} requests retried by the gateway")
    _assert_no_failure_and_every_write_kept(
        deployment, load, "rolling restart", time.monotonic() - started
    )
    # Not even rescued by the gateway's retries: each replica's drain kept it serving until the
    # checks had taken it out (with no drain, requests meet refused connections and are retried,
    # or fail where a load balancer does not retry).
    assert retried == 0


def test_moving_the_weights_from_the_old_deployment_to_ours_fails_no_request(
    deployment: Deployment,
) -> None:
    api = deployment.api
    started = time.monotonic()
    steps = [(100, 0), (95, 5), (67, 33), (50, 50), (0, 100)]
    observed = []
    with Load(deployment.gateway_url, _token(deployment.gateway_url)) as load:
        for legacy, new in steps:
            for backend in ("users", "thoughts"):
                set_weights(api, backend, {"legacy": legacy, "new": new}, timeout=20)
            before = _served(deployment)
            load.run_for(3.0)  # a few seconds of load at this split
            after = _served(deployment)
            delta = {k: after[k] - before[k] for k in after}
            observed.append((legacy, new, delta))
        for backend in ("users", "thoughts"):
            drain(api, backend, "legacy-1", maint=True, timeout=30)
    for legacy, new, delta in observed:
        print(f"legacy={legacy} new={new}: served {delta}")
    _assert_no_failure_and_every_write_kept(
        deployment, load, "weights 5/33/50/100", time.monotonic() - started
    )
    for legacy, new, delta in observed:
        for backend in ("users", "thoughts"):
            old = delta[f"{backend}/legacy-1"]
            ours = delta[f"{backend}/new-1"] + delta[f"{backend}/new-2"]
            if legacy == 0:
                assert old == 0, (legacy, new, delta)
            if new == 0:
                assert ours == 0, (legacy, new, delta)
            if legacy and new:
                assert old, (legacy, new, delta)
                assert ours, (legacy, new, delta)
    assert {s.name: s.status for s in servers(api, "thoughts")}["legacy-1"] == "MAINT"


def test_draining_and_removing_a_server_fails_no_request(deployment: Deployment) -> None:
    api = deployment.api
    started = time.monotonic()
    with Load(deployment.gateway_url, _token(deployment.gateway_url)) as load:
        for backend in ("users", "thoughts"):
            drained = drain(api, backend, "new-2", maint=True, timeout=30)
            assert drained.status == "MAINT"
            assert drained.sessions == 0
            deployment.processes[f"{backend}/new-2"].stop(timeout=30)
        before = _served(deployment)
        load.run_for(3.0)  # serving on new-1 alone
        alone = {k: v - before[k] for k, v in _served(deployment).items()}
        for backend in ("users", "thoughts"):
            process = deployment.processes[f"{backend}/new-2"]
            process.start()
            process.wait_until("/readyz")
            ready(api, backend, "new-2", timeout=30)
    print(f"\nwith new-2 removed, served {alone}")
    _assert_no_failure_and_every_write_kept(
        deployment, load, "drain and remove", time.monotonic() - started
    )
    assert alone["thoughts/new-2"] == 0
    assert alone["thoughts/new-1"] > 0
