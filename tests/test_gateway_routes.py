"""The gateway (deploy/gateway/haproxy.cfg) sends every public route of every service to that
service: HAProxy in front of the real processes, each route read from its service's own OpenAPI
schema and asked once directly and once through the gateway; both answers must match.

Before, `/api/logout/`, `/api/features/` and the users service's `/api/me/` were routed to the
frontend or to thoughts (404): an API client could not log out through the public entry point.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.testing import LocalSystem
from testkit import free_port, need

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CONFIG = ROOT / "deploy/gateway/haproxy.cfg"
# Not behind the gateway: each service's probes, metrics and documentation (operators reach
# them on the service's own port), its admin routes (the gateway refuses them), and the tasks
# service's welcome page at `/`, which on the public host is the site's home page (the tasks
# service has a host of its own in Kubernetes).
NOT_PUBLIC = re.compile(r"^/(healthz|readyz|metrics|admin(/.*)?)$|^/$")
BACKENDS = {"USERS": "users", "THOUGHTS": "thoughts", "TASKS": "tasks", "FRONTEND": "frontend"}


@pytest.fixture(scope="module")
def gateway(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if haproxy is None:
        need("HAProxy is not installed (apt-get install haproxy)")
        return
    folder = tmp_path_factory.mktemp("gateway")
    port = free_port()
    env = {
        "PATH": "/usr/sbin:/usr/bin:/bin",
        "GATEWAY_BIND": f"127.0.0.1:{port}",
        "STATS_BIND": f"127.0.0.1:{free_port()}",
        "RUNTIME_SOCKET": str(folder / "haproxy.sock"),
        "RUNTIME_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    for prefix, service in BACKENDS.items():
        address = system.url(service).removeprefix("http://")
        env |= {f"{prefix}_1": address, f"{prefix}_2": address}
        # The old system's server is disabled; any address that answers nothing will do.
        env[f"{prefix}_LEGACY_1"] = f"127.0.0.1:{free_port()}"
    log = (folder / "haproxy.log").open("wb")
    process = subprocess.Popen(
        [haproxy, "-db", "-f", str(HAPROXY_CONFIG)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (folder / "haproxy.log").read_text()
            try:
                # Up once the frontend (the default backend) is in: its checks say it is ready.
                if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the gateway never answered"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def public_operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    operations = []
    for path, methods in schema["paths"].items():
        if NOT_PUBLIC.match(path):
            continue
        # 24 hexadecimal digits: a task id, and a number to every other service.
        concrete = re.sub(r"\{[^}]+\}", "999999999999999999999999", path)
        concrete = concrete.replace("/api/thoughts/999999999999999999999999/", "/api/thoughts/9/")
        concrete = concrete.replace("/thoughts/999999999999999999999999/", "/thoughts/9/")
        operations += [(method.upper(), concrete) for method in methods]
    return operations


def test_every_public_route_of_every_service_reaches_it_through_the_gateway(
    system: LocalSystem, gateway: str
) -> None:
    checked: dict[str, list[str]] = {}
    with httpx.Client(timeout=10) as client:
        for service in ("users", "thoughts", "tasks"):
            schema = client.get(f"{system.url(service)}/openapi.json").json()
            for method, path in public_operations(schema):
                # No token, no body: each service's own refusal (401, 400 ...) tells it apart
                # from another service's 404 page.
                direct = client.request(method, f"{system.url(service)}{path}")
                through = client.request(method, f"{gateway}{path}")
                assert (through.status_code, through.headers.get("content-type")) == (
                    direct.status_code,
                    direct.headers.get("content-type"),
                ), (service, method, path, through.text[:200])
                checked.setdefault(service, []).append(f"{method} {path}")
    assert {"POST /api/logout/", "GET /api/me/", "GET /api/features/"} <= set(checked["users"])
    assert "GET /api/me/thoughts/" in checked["thoughts"]
    assert "GET /tasks" in checked["tasks"]
