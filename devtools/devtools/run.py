"""`python -m devtools run`: the whole system on this machine, on SQLite, with one command.

1. Refuses to start, naming the port, when a port the system needs is taken.
2. Prepares (each step idempotent): dev signing keys, the frontend's dev secret key, migrated
   databases, all under var/.
3. Starts thoughts, users, frontend and tasks with `python -m <service> serve` under honcho, which
   prefixes every log line with the service's name and stops them all when one stops or on Ctrl-C.
4. Once every service is ready, seeds the demo users and prints the URLs.
"""

from __future__ import annotations

import errno
import os
import shlex
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from honcho.manager import Manager
from honcho.printer import Message

from devtools.logview import ServiceLogPrinter
from devtools.seed import seed_demo, wait_until_ready
from devtools.stack import Stack, StepFailed

# honcho's return codes when it was stopped by a signal: a requested stop, not a failure.
STOPPED_BY_SIGNAL = frozenset({130, 143})


class PortInUse(Exception):
    pass


def check_ports_free(stack: Stack) -> None:
    """Raises PortInUse naming every service whose port is taken."""
    taken = []
    for service in stack.services():
        for port in service.all_ports:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                # The same option the servers use, so a port in TIME_WAIT does not count as taken.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((stack.host, port))
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
                    taken.append(f"  port {port} (for {service.name}) is already in use")
    if taken:
        raise PortInUse(
            f"cannot start: a port the system needs on {stack.host} is taken\n"
            + "\n".join(taken)
            + "\nIs MyThoughts already running in another terminal? Stop whatever listens there "
            "(`ss -ltnp` shows it), or choose other ports with "
            "--thoughts-port/--users-port/--frontend-port/--tasks-port/"
            "--frontend-internal-port."
        )


def banner(stack: Stack) -> str:
    ports = stack.ports
    return "\n".join(
        [
            "MyThoughts is running:",
            f"  web site      {stack.url(ports.frontend)}/   "
            "(log in as bruce/bruce or stephen/stephen)",
            f"  thoughts API  {stack.url(ports.thoughts)}/docs",
            f"  users API     {stack.url(ports.users)}/docs",
            f"  tasks API     {stack.url(ports.tasks)}/docs",
            f"  frontend ops  {stack.url(ports.frontend_internal)}/metrics   (internal port)",
            "  admin routes  open to loopback without a token (no ADMIN_TOKEN in make run)",
            "Press Ctrl-C to stop.",
        ]
    )


def _after_start(stack: Stack, say: Callable[[str], None], stopped: threading.Event) -> None:
    # honcho forks its process readers as the loop starts: give it a moment, so no fork happens
    # while this thread is in the middle of a request.
    if stopped.wait(1.0):
        return
    urls = [service.url for service in stack.services()]
    try:
        wait_until_ready(urls, timeout=90)
        if stopped.is_set():
            return
        seed_demo(stack.url(stack.ports.users), stack.url(stack.ports.thoughts), say)
    except Exception as exc:
        if not stopped.is_set():
            say(f"could not seed the demo data: {type(exc).__name__}: {exc}")
        return
    say(banner(stack))


def run(stack: Stack, *, seed: bool = True, json_logs: bool = False) -> int:
    try:
        check_ports_free(stack)
    except PortInUse as exc:
        print(f"devtools run: {exc}")
        return 1

    print(f"preparing the local system in {stack.var_dir} ...")
    try:
        for line in stack.prepare():
            print(f"  {line.splitlines()[-1] if line else 'ok'}")
    except StepFailed as exc:
        print(f"devtools run: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130

    manager = Manager(printer=ServiceLogPrinter(raw=json_logs, log_dir=stack.var_dir / "logs"))
    for service in stack.services():
        manager.add_process(
            service.name,
            "exec " + shlex.join(service.argv("serve")),
            env={**os.environ, **service.env},
        )

    def say(text: str) -> None:
        # Through honcho's own queue, so these lines interleave cleanly with the services'.
        manager.events.put(
            Message(
                type="line", data=text + "\n", time=datetime.now(), name="devtools", colour=None
            )
        )

    stopped = threading.Event()
    if seed:
        threading.Thread(
            target=_after_start, args=(stack, say, stopped), name="seed", daemon=True
        ).start()
    try:
        manager.loop()
    finally:
        stopped.set()
    code: int = manager.returncode or 0
    if code in STOPPED_BY_SIGNAL:
        print("devtools run: every service stopped")
        return 0
    return code


def default_var_dir() -> Path:
    return Path.cwd() / "var"
