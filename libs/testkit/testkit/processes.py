"""Real service processes for tests and the benchmark: started with the same command as `make
run`, on a free port, waited for until they answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """A real service process started with the same command as `make run`, on a free port."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        """Launches the process and waits until it answers /healthz."""
        self.launch()
        self.wait_until(timeout=timeout)
        return self

    def launch(self) -> None:
        # The child writes through its own copy of the descriptor: ours is closed at once.
        with self.log_path.open("wb") as log_file:
            # No load balancer waits on a test's process: no drain, unless the test sets one.
            env = {**os.environ, "SHUTDOWN_DRAIN_SECONDS": "0", **self.env}
            self.process = subprocess.Popen(  # noqa: S603 - argv built by tests
                self.argv, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )

    def wait_until(self, path: str = "/healthz", timeout: float = 30.0) -> None:
        """Waits until `path` answers 200; stops the process and raises if it never does."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {path} in {timeout}s:\n{self.logs()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def python_module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
