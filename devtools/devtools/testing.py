"""The local system for tests: the services `devtools run` starts, on free ports, in a temp folder.

Used by the cross-service tests (tests/), the browser tests and the frontend's tests, so that all
of them run the real processes with the real commands (`python -m <service> serve`) and the same
settings as `make run`, only with cheaper password hashing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import httpx

from devtools.stack import Ports, Stack
from testkit import ServiceProcess, free_port
from testkit.system import RunningSystem

# argon2 at its cheapest and generous address limits: tests log in a lot, from one address.
TEST_OVERRIDES: dict[str, dict[str, str]] = {
    "users": {
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "ARGON2_PARALLELISM": "1",
        "LOGIN_MAX_FAILURES_PER_USERNAME": "3",
        "LOGIN_MAX_FAILURES_PER_ADDRESS": "10000",
        "PASSWORD_CHECKS_PER_CLIENT": "1000",
    },
    "thoughts": {},
    "frontend": {},
    "tasks": {},
}


class LocalSystem(RunningSystem):
    """Some or all services of a Stack as real processes; a context manager. What the services'
    own test suites use of it is the RunningSystem protocol (mypy checks that it holds)."""

    def __init__(
        self,
        root: Path,
        services: Iterable[str] = ("thoughts", "users", "frontend", "tasks"),
        overrides: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        merged = {
            name: {**TEST_OVERRIDES.get(name, {}), **(overrides or {}).get(name, {})}
            for name in ("thoughts", "users", "frontend", "tasks")
        }
        self.root = root
        self.stack = Stack(
            var_dir=root / "var",
            ports=Ports(
                thoughts=free_port(),
                users=free_port(),
                frontend=free_port(),
                tasks=free_port(),
                frontend_internal=free_port(),
            ),
            overrides=merged,
        )
        self.names = list(services)
        self.processes: dict[str, ServiceProcess] = {}
        (root / "logs").mkdir(parents=True, exist_ok=True)
        for service in self.stack.services():
            if service.name in self.names:
                self.processes[service.name] = ServiceProcess(
                    name=service.name,
                    argv=service.argv("serve"),
                    env=service.env,
                    port=service.port,
                    log_path=root / "logs" / f"{service.name}.log",
                )

    @property
    def keys_dir(self) -> Path:
        return self.stack.keys_dir

    def url(self, name: str) -> str:
        port: int = getattr(self.stack.ports, name)
        return self.stack.url(port)

    def prepare(self) -> None:
        """What `Stack.prepare` does with the services' commands, done in this process: the
        same functions, without paying three interpreter start-ups per test session."""
        from servicekit.migrations import upgrade
        from tasks_service.main import MIGRATIONS_DIR as TASKS_MIGRATIONS
        from thoughts_service.main import MIGRATIONS_DIR as THOUGHTS_MIGRATIONS
        from users_service.main import MIGRATIONS_DIR as USERS_MIGRATIONS
        from users_service.signing import generate_key

        self.stack.var_dir.mkdir(parents=True, exist_ok=True)
        if not list(self.stack.keys_dir.glob("*.key.pem")):
            generate_key(self.stack.keys_dir, "test-key")
        self.stack.ensure_secret_key()
        migrations = {
            "users": USERS_MIGRATIONS,
            "thoughts": THOUGHTS_MIGRATIONS,
            "tasks": TASKS_MIGRATIONS,
        }

        # In a worker thread: Alembic runs its own event loop, which cannot start in a thread that
        # already has one running (async tests, Playwright's sync API). One at a time: Alembic's
        # migration context is process-global.
        def migrate_all() -> None:
            for name, migrations_dir in migrations.items():
                if name not in self.names:
                    continue
                upgrade(migrations_dir, self.stack.service(name).env["DATABASE_URL"])

        with ThreadPoolExecutor(1) as pool:
            pool.submit(migrate_all).result()

    def start(self, timeout: float | None = None) -> LocalSystem:
        """Prepares and starts the processes; each waits up to `timeout` seconds, by default
        testkit's start_seconds() (TEST_SERVICE_START_SECONDS, 180 s), and fails at once if
        its process exits."""
        self.prepare()
        # Together: each waits for its own dependencies through the kit's start-up check.
        with ThreadPoolExecutor(len(self.processes)) as pool:
            futures = [pool.submit(p.start, timeout) for p in self.processes.values()]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            self.stop()
            raise RuntimeError(f"the local system did not start: {errors[0]}") from errors[0]
        return self

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()

    def logs(self, name: str) -> str:
        return self.processes[name].logs()

    def login_token(self, username: str, password: str) -> str:
        response = httpx.post(
            f"{self.url('users')}/api/login/",
            json={"username": username, "password": password},
            timeout=10,
        )
        response.raise_for_status()
        authorized: str = response.json()["Authorized"]
        return authorized.removeprefix("Bearer ")

    def create_user(self, username: str, password: str) -> None:
        response = httpx.post(
            f"{self.url('users')}/admin/users/",
            json={"username": username, "password": password},
            timeout=10,
        )
        if response.status_code != 409:
            response.raise_for_status()

    def __enter__(self) -> LocalSystem:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
