"""Issue 14 item 11: every admin route of every service, reached directly on the service's own
port (real processes, real HTTP), answers only to the admin token, however its path is spelled.

The routes are read from each service's own OpenAPI schema, so a new admin route is covered the
day it is added. A gateway rule on the raw prefix misses `/%61dmin/` and `/admin%2fusers/`; the
kit's guard (servicekit.admin) checks the decoded, slash-collapsed path before routing.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from devtools.observed import ALL_SERVICES, ObservedSystem


def spellings(path: str) -> list[str]:
    """`/admin/x/` as an attacker spells it past a rule on the raw prefix."""
    rest = path.removeprefix("/admin/")
    return [
        path,
        f"/%61dmin/{rest}",
        f"/%61%64%6d%69%6e/{rest}",
        f"/admin%2f{rest}",
        f"/admin%2F{rest}",
        f"//admin/{rest}",
        f"/admin//{rest}",
    ]


def operations_port(observed: ObservedSystem, service: str) -> str:
    stack = observed.system.stack
    if service == "frontend":  # its operations live on the internal port (item 13)
        return stack.url(stack.ports.frontend_internal)
    return observed.url(service)


def admin_operations(base: str) -> list[tuple[str, str]]:
    schema: dict[str, Any] = httpx.get(f"{base}/openapi.json", timeout=10).json()
    found = []
    for path, operations in schema["paths"].items():
        if path == "/admin" or path.startswith("/admin/"):
            concrete = re.sub(r"\{[^}]+\}", "999999", path)
            found += [(method.upper(), concrete) for method in operations]
    return found


def test_every_admin_route_of_every_service_needs_the_admin_token(
    observed_system: ObservedSystem,
) -> None:
    wrong = {"Authorization": "Bearer not-the-admin-token-but-long-enough"}
    checked: dict[str, list[str]] = {}
    with httpx.Client(timeout=10) as client:
        for service in ALL_SERVICES:
            base = operations_port(observed_system, service)
            operations = admin_operations(base)
            assert ("GET", "/admin/version/") in operations, service
            for method, path in operations:
                for spelling in spellings(path):
                    for headers in ({}, wrong):
                        answer = client.request(method, f"{base}{spelling}", headers=headers)
                        assert answer.status_code == 401, (service, method, spelling, headers)
                        assert answer.headers["content-type"] == "application/problem+json"
                # The token opens it: the route's own answer (a 404 for id 999999, a 400 for
                # a missing body), never the guard's 401.
                opened = client.request(method, f"{base}{path}", headers=observed_system.admin)
                assert opened.status_code not in (401, 500), (service, method, path)
                checked.setdefault(service, []).append(f"{method} {path}")
    assert set(checked) == set(ALL_SERVICES)
    assert {"POST /admin/users/", "DELETE /admin/users/999999/"} <= set(checked["users"])


def test_the_frontends_public_port_serves_no_admin_route(observed_system: ObservedSystem) -> None:
    base = observed_system.url("frontend")
    with httpx.Client(timeout=10) as client:
        for spelling in spellings("/admin/version/"):
            for headers in ({}, observed_system.admin):
                answer = client.get(f"{base}{spelling}", headers=headers)
                assert answer.status_code in (401, 404), (spelling, answer.status_code)
