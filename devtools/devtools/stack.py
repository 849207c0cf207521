"""The whole system on one machine: which services, on which ports, with which settings.

`python -m devtools run` and the cross-service tests both build their services from here, so the
tests start exactly what a developer runs: `python -m <service> serve`, the command of the images.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

# The oldest versions each caller accepts (the kit's start-up dependency check).
MIN_USERS_VERSION = "0.1"
MIN_THOUGHTS_VERSION = "0.1"


@dataclass(frozen=True)
class Ports:
    thoughts: int = 8000
    users: int = 8001
    frontend: int = 8002
    tasks: int = 8003
    # The frontend's metrics, docs and admin routes: never on its public port.
    frontend_internal: int = 9002


@dataclass(frozen=True)
class Service:
    name: str
    module: str
    port: int
    env: dict[str, str]
    migrates: bool = False
    internal_port: int | None = None

    @property
    def all_ports(self) -> tuple[int, ...]:
        return (self.port,) if self.internal_port is None else (self.port, self.internal_port)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", self.module, *args]

    @property
    def url(self) -> str:
        return f"http://{self.env['HOST']}:{self.port}"


@dataclass(frozen=True)
class Stack:
    """The three services of a local system, sharing one folder for keys, secrets and databases."""

    var_dir: Path
    ports: Ports = field(default_factory=Ports)
    host: str = "127.0.0.1"
    # Extra settings per service name, e.g. cheaper password hashing in tests.
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    @property
    def keys_dir(self) -> Path:
        return self.var_dir / "keys"

    @property
    def secret_key_file(self) -> Path:
        return self.var_dir / "frontend-secret-key"

    @property
    def jwks_url(self) -> str:
        return f"{self.url(self.ports.users)}/.well-known/jwks.json"

    def services(self) -> list[Service]:
        users_url = self.url(self.ports.users)
        thoughts_url = self.url(self.ports.thoughts)
        # No load balancer in front of a local run: stop at once instead of draining. Log lines
        # written as they happen, not in batches: a person (or a test) reads them as they come.
        common = {
            "HOST": self.host,
            "PYTHONUNBUFFERED": "1",
            "SHUTDOWN_DRAIN_SECONDS": "0",
            "LOG_FLUSH_SECONDS": "0",
        }
        definitions = [
            Service(
                "thoughts",
                "thoughts_service",
                self.ports.thoughts,
                {
                    **common,
                    "PORT": str(self.ports.thoughts),
                    "DATABASE_URL": f"sqlite+aiosqlite:///{self.var_dir / 'thoughts.db'}",
                    # The production path: public keys fetched from the users service's JWKS.
                    "AUTH_JWKS_URL": self.jwks_url,
                    # Start once users answers, so the first token finds the JWKS reachable.
                    "DEPENDENCIES": f"users={users_url}>={MIN_USERS_VERSION}",
                },
                migrates=True,
            ),
            Service(
                "users",
                "users_service",
                self.ports.users,
                {
                    **common,
                    "PORT": str(self.ports.users),
                    "DATABASE_URL": f"sqlite+aiosqlite:///{self.var_dir / 'users.db'}",
                    "JWT_KEYS_DIR": str(self.keys_dir),
                    "SIGNUP_ENABLED": "true",
                    # As the image: argon2's blocks in huge pages (users_service.heap).
                    "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
                },
                migrates=True,
            ),
            Service(
                "frontend",
                "frontend_service",
                self.ports.frontend,
                {
                    **common,
                    "PORT": str(self.ports.frontend),
                    "INTERNAL_PORT": str(self.ports.frontend_internal),
                    "USERS_URL": users_url,
                    "THOUGHTS_URL": thoughts_url,
                    # Plain HTTP on localhost: Secure cookies would never be sent back.
                    "COOKIE_SECURE": "false",
                    "SECRET_KEY_FILE": str(self.secret_key_file),
                    "DEPENDENCIES": (
                        f"users={users_url}>={MIN_USERS_VERSION},"
                        f"thoughts={thoughts_url}>={MIN_THOUGHTS_VERSION}"
                    ),
                },
                internal_port=self.ports.frontend_internal,
            ),
            Service(
                "tasks",
                "tasks_service",
                self.ports.tasks,
                {
                    **common,
                    "PORT": str(self.ports.tasks),
                    "DATABASE_URL": f"sqlite+aiosqlite:///{self.var_dir / 'tasks.db'}",
                    # Optional ownership: tokens verified with the users service's JWKS.
                    "AUTH_JWKS_URL": self.jwks_url,
                    "DEPENDENCIES": f"users={users_url}>={MIN_USERS_VERSION}",
                },
                migrates=True,
            ),
        ]
        return [
            replace(service, env={**service.env, **self.overrides.get(service.name, {})})
            for service in definitions
        ]

    def service(self, name: str) -> Service:
        return next(s for s in self.services() if s.name == name)

    # Preparation, each step idempotent -------------------------------------------------------

    def ensure_keys(self) -> str:
        users = self.service("users")
        return run_step(users.argv("keys", "generate", "--if-none"), users.env)

    def ensure_secret_key(self) -> str:
        path = self.secret_key_file
        if path.exists():
            return f"frontend secret key present in {path}"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        return f"generated a frontend secret key in {path}"

    def prepare(self) -> list[str]:
        """Keys, secret, migrated databases: everything the services need before they start.

        The steps are independent processes, so they run side by side.
        """
        self.var_dir.mkdir(parents=True, exist_ok=True)
        secret = self.ensure_secret_key()
        migrating = [s for s in self.services() if s.migrates]
        with ThreadPoolExecutor(1 + len(migrating)) as pool:
            keys = pool.submit(self.ensure_keys)
            migrations = [pool.submit(run_step, s.argv("migrate"), s.env) for s in migrating]
            return [keys.result(), secret, *(m.result() for m in migrations)]


class StepFailed(Exception):
    pass


def run_step(argv: list[str], env: Mapping[str, str]) -> str:
    """Runs one preparation command; its output, or StepFailed with its output."""
    result = subprocess.run(  # noqa: S603 - our own service commands
        argv,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise StepFailed(f"`{' '.join(argv[1:])}` failed (exit {result.returncode}):\n{output}")
    return output
