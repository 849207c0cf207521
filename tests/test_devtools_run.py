"""`python -m devtools run` (what `make run` runs), as a developer uses it."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from devtools.stack import Ports, Stack
from testkit import csrf_token, free_port, python_module_argv


def devtools_run(var_dir: Path, ports: Ports) -> list[str]:
    return python_module_argv(
        "devtools",
        "run",
        "--var-dir",
        str(var_dir),
        "--thoughts-port",
        str(ports.thoughts),
        "--users-port",
        str(ports.users),
        "--frontend-port",
        str(ports.frontend),
        "--tasks-port",
        str(ports.tasks),
        "--frontend-internal-port",
        str(ports.frontend_internal),
    )


def test_a_port_in_use_is_named_before_anything_starts(tmp_path):
    ports = Ports(free_port(), free_port(), free_port(), free_port(), free_port())
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.users))
        squatter.listen()
        result = subprocess.run(
            devtools_run(tmp_path / "var", ports),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {ports.users} (for users) is already in use" in result.stdout
    assert f"port {ports.thoughts}" not in result.stdout
    assert not (tmp_path / "var").exists()  # nothing was prepared, nothing started


def read_lines(stream, lines: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line.rstrip("\n"))


def wait_for(lines: queue.Queue[str], seen: list[str], pattern: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if pattern in line:
            return
    raise AssertionError(f"no line with {pattern!r} in {timeout}s:\n" + "\n".join(seen[-40:]))


def test_run_starts_seeds_and_stops_the_whole_system(tmp_path):
    var_dir = tmp_path / "var"
    ports = Ports(free_port(), free_port(), free_port(), free_port(), free_port())
    process = subprocess.Popen(
        devtools_run(var_dir, ports),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        wait_for(lines, seen, "MyThoughts is running:", timeout=120)
        wait_for(lines, seen, "Press Ctrl-C to stop.", timeout=5)
        site = f"http://127.0.0.1:{ports.frontend}"
        assert any(f"web site      {site}/" in line for line in seen)
        for name in ("thoughts", "users", "frontend", "tasks"):
            assert any(re.match(rf"^\d\d:\d\d:\d\d {name} +\| ", line) for line in seen), name

        # Log in as a demo user, as the README says.
        with httpx.Client(base_url=site) as browser:
            page = browser.get("/login")
            login = browser.post(
                "/login",
                data={
                    "username": "bruce",
                    "password": "bruce",
                    "csrf_token": csrf_token(page.text),
                },
            )
            assert login.status_code == 303
            login_request = login.headers["x-request-id"]
            home = browser.get("/")
            assert "Backward compatibility is a feature" in home.text
            # Operations are on the internal port only (issue 14, item 13).
            for path in ("/metrics", "/docs", "/openapi.json", "/admin/version/"):
                assert browser.get(path).status_code == 404, path
        internal = f"http://127.0.0.1:{ports.frontend_internal}"
        assert "http_requests_total" in httpx.get(f"{internal}/metrics").text
        assert httpx.get(f"{internal}/admin/version/").status_code == 200
        # No ADMIN_TOKEN in make run: admin routes stay open on loopback, and every service says so.
        assert any("no ADMIN_TOKEN is configured" in line for line in seen)
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        code = process.wait(timeout=30)
    wait_for(lines, seen, "every service stopped", timeout=5)
    assert code == 0
    for port in (ports.thoughts, ports.users, ports.frontend, ports.tasks, ports.frontend_internal):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"

    # Each service's lines were kept in var/logs/: `devtools logs` finds the login in two.
    assert sorted(p.name for p in (var_dir / "logs").iterdir()) == [
        "frontend.log",
        "tasks.log",
        "thoughts.log",
        "users.log",
    ]
    found = subprocess.run(
        python_module_argv("devtools", "logs", login_request, "--var-dir", str(var_dir)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert sorted(line.split()[1] for line in found if "/login" in line) == ["frontend", "users"]

    # Everything it prepared is kept and reused: a second run changes nothing.
    key_files = sorted(p.name for p in (var_dir / "keys").iterdir())
    secret = (var_dir / "frontend-secret-key").read_text()
    again = Stack(var_dir=var_dir, ports=ports).prepare()
    assert "nothing to do" in again[0]
    assert sorted(p.name for p in (var_dir / "keys").iterdir()) == key_files
    assert (var_dir / "frontend-secret-key").read_text() == secret
