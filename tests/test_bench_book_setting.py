"""bench/book_setting.py reads hey's report right: responses by status, socket errors.

A real hey (`-disable-keepalive`, as the benchmark runs it) against a tiny HTTP server started
here that answers 200 on one path and 404 on another, and against a port nobody listens on.
"""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from testkit import free_port, need

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from book_setting import (  # type: ignore[import-not-found]  # bench/ is a script folder
    ceiling_target,
    machine_cpu,
    run_hey,
    sanity_check,
)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/ok" else 404
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    if shutil.which("hey") is None:
        need("hey is not installed (apt-get install hey)")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_counts_responses_and_non_2xx(server: str) -> None:
    ok = run_hey(f"{server}/ok", {}, seconds=1, connections=2)
    assert ok["responses"] > 0
    assert ok["non_2xx"] == 0
    assert ok["socket_errors"] == 0
    assert 0 < ok["p50_ms"] <= ok["p99_ms"]

    missing = run_hey(f"{server}/missing", {}, seconds=1, connections=2)
    assert missing["responses"] > 0
    assert missing["non_2xx"] == missing["responses"]


def test_counts_socket_errors() -> None:
    if shutil.which("hey") is None:
        need("hey is not installed (apt-get install hey)")
    refused = run_hey(f"http://127.0.0.1:{free_port()}/", {}, seconds=1, connections=2)
    assert refused["responses"] == 0
    assert refused["socket_errors"] > 0


def test_the_ceiling_answers_both_paths_as_the_services_do(tmp_path: Path) -> None:
    """HAProxy's ceiling target passes the same answer check as the services (a version on the
    floor, the asked thought's id by id), and the machine's busy time grows under hey."""
    if shutil.which("haproxy") is None or shutil.which("hey") is None:
        need("haproxy and hey are needed for the ceiling")
    target = ceiling_target(tmp_path, 500000)
    assert target is not None
    target.process.launch()
    try:
        target.process.wait_until(target.ready_path, timeout=30)
        url = target.process.url
        sanity_check(f"{url}/admin/version/", "/admin/version/", {}, 500000)
        sanity_check(f"{url}/api/thoughts/500000/", "thought by id", {}, 500000)
        with pytest.raises(SystemExit, match="wrong answer"):
            sanity_check(f"{url}/api/thoughts/500000/", "thought by id", {}, 7)
        before = machine_cpu()["machine"]
        result = run_hey(f"{url}/admin/version/", {}, seconds=1, connections=2)
        assert result["responses"] > 0
        assert result["non_2xx"] == result["socket_errors"] == 0
        assert machine_cpu()["machine"] > before
    finally:
        target.process.stop()
