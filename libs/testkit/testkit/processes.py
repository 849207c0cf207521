"""Real service processes for tests and the benchmark: started with the same command as `make
run`, on a free port, waited for until they answer."""

from __future__ import annotations

import functools
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

# Where a test's wait for a service process to answer can be lengthened or shortened.
START_SECONDS_VARIABLE = "TEST_SERVICE_START_SECONDS"
# How long by default. Generous: on a machine whose load average was 35 on 2 cores, starting a
# service (an interpreter, its imports, its start-up check) took over a minute, and a fixed
# 60 s wait failed whole test sessions. Waiting long costs nothing when something is wrong:
# a process that exits fails the wait at once.
DEFAULT_START_SECONDS = 180.0


def start_seconds() -> float:
    """The wait for a service process to answer: TEST_SERVICE_START_SECONDS, else 180 s."""
    value = os.environ.get(START_SECONDS_VARIABLE, "")
    if not value:
        return DEFAULT_START_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(f"{START_SECONDS_VARIABLE}={value!r}: give a number of seconds above 0")
    return seconds


# How many ports below the kernel's ephemeral range free_port hands out from.
PORT_POOL_SIZE = 10_000


def ephemeral_start() -> int:
    """Where Linux's range for bind(0) and outgoing connections starts (32768 by default)."""
    try:
        low = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
    except OSError:
        return 32768
    return int(low)


def port_slice() -> range:
    """This process's share of the pool below the ephemeral range: under pytest-xdist each
    worker (PYTEST_XDIST_WORKER gwN of PYTEST_XDIST_WORKER_COUNT) its own, else all of it."""
    top = ephemeral_start()
    pool = range(max(1024, top - PORT_POOL_SIZE), top)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    size = len(pool) // workers
    return range(pool.start + worker * size, pool.start + (worker + 1) * size)


class PortPicker:
    """Hands out ports of `ports` in turn from a random start, each one only if nothing is bound
    to it now, and none twice until the whole slice has been handed out.

    Not bind(0): the kernel may hand a port it gave out a moment ago to the next caller, in
    another test worker, before the first caller's service listens on it. The second service
    then fails to bind and exits, but the first one answers its start-up /healthz (the likely
    cause of a CI run's POST /task answered 404 by another test's service). Below the ephemeral
    range no bind(0) and no outgoing connection takes a port, and the workers' slices do not
    overlap. (A filter on bind(0)'s ports by worker cannot work: Linux gives bind(0) odd ports
    while it has any free, so a worker filtering for even ones waits forever.)"""

    def __init__(self, ports: Sequence[int]) -> None:
        self.ports = ports
        self.next = random.randrange(len(ports))  # noqa: S311 - spreads concurrent test sessions

    def __call__(self) -> int:
        for _ in range(len(self.ports)):
            port = self.ports[self.next]
            self.next = (self.next + 1) % len(self.ports)
            if _bindable(port):
                return port
        raise RuntimeError(f"no free port in {self.ports[0]}-{self.ports[-1]}")


def _bindable(port: int) -> bool:
    """Whether a socket without SO_REUSEADDR can bind the port: nothing listens on it, nothing
    is connected from it and no closed connection lingers on it (TIME_WAIT)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@functools.cache
def _picker() -> PortPicker:
    return PortPicker(port_slice())


def free_port() -> int:
    """A port nothing is bound to, handed to no other caller of this test session (PortPicker
    says why)."""
    return _picker()()


@dataclass
class ServiceProcess:
    """A real service process started with the same command as `make run`, on a free port."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def serving(
        cls, service: str, env: dict[str, str], log_path: Path, *, name: str | None = None
    ) -> ServiceProcess:
        """`python -m <service>_service serve` (make run's command) with `env`, on a free port
        given as its PORT; not started yet (`start()`)."""
        port = free_port()
        return cls(
            name=name or service,
            argv=python_module_argv(f"{service}_service", "serve"),
            env={**env, "PORT": str(port)},
            port=port,
            log_path=log_path,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float | None = None) -> ServiceProcess:
        """Launches the process and waits until it answers /healthz (`wait_until`)."""
        self.launch()
        self.wait_until(timeout=timeout)
        return self

    def launch(self) -> None:
        # The child writes through its own copy of the descriptor: ours is closed at once.
        with self.log_path.open("wb") as log_file:
            # No load balancer waits on a test's process: no drain, unless the test sets one.
            # Tests read the log as soon as a request is answered: every line written at once,
            # unless the test sets a flush interval (servicekit's test_log_batches.py does).
            env = {
                **os.environ,
                "SHUTDOWN_DRAIN_SECONDS": "0",
                "LOG_FLUSH_SECONDS": "0",
                **self.env,
            }
            self.process = subprocess.Popen(  # noqa: S603 - argv built by tests
                self.argv, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )

    def wait_until(self, path: str = "/healthz", timeout: float | None = None) -> None:
        """Waits until `path` answers 200 while the process runs, at most `timeout` seconds
        (by default `start_seconds()`). Raises at once if the process exits; past the deadline
        stops it and raises. Either error shows what the process printed."""
        assert self.process is not None, "launch() first"
        timeout = start_seconds() if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            returncode = self.process.poll()
            if returncode is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {returncode} before answering {path}; "
                    f"it printed:\n{self._printed()}"
                )
            try:
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} was still running but did not answer {path} within {timeout:.0f}s "
            f"(stopped now; {START_SECONDS_VARIABLE} sets the wait); it printed:\n"
            f"{self._printed()}"
        )

    def _printed(self, limit: int = 8000) -> str:
        """The end of what the process printed, for an error message."""
        printed = self.logs()
        if len(printed) > limit:
            return f"[... {len(printed) - limit} characters before ...]\n{printed[-limit:]}"
        return printed or "(nothing)"

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


class ProcessGroup:
    """The service processes one test starts, each on a free port with its log in `log_dir`,
    stopped together by `stop_all()` (the fixture's teardown)."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.name = name
        self.log_dir = log_dir
        self.processes: list[ServiceProcess] = []

    def start(self, argv: Callable[[int], list[str]], env: dict[str, str]) -> ServiceProcess:
        """Starts `argv(port)` on a free port and waits until it answers (ServiceProcess.start)."""
        port = free_port()
        process = ServiceProcess(
            name=self.name,
            argv=argv(port),
            env=env,
            port=port,
            log_path=self.log_dir / f"{self.name}-{port}.log",
        )
        self.processes.append(process)
        return process.start()

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()
