"""compose.yaml's Unix sockets (no Docker needed; tests/deploy/test_compose.py runs them): the
gateway reaches every replica over that replica's own Unix socket in the shared volume, which
only the services' user and group may enter, and the gateway is given that group; the frontend
reaches users and thoughts the same way, and no service believes a TCP peer's X-Forwarded-For."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SOCKETS = "/run/mythoughts/sockets"
# The gateway's server variables (deploy/gateway/haproxy.cfg) and the replica each names.
REPLICAS = {
    f"{service.upper()}_{n}": service if n == 1 else f"{service}-2"
    for service in ("users", "thoughts", "tasks", "frontend")
    for n in (1, 2)
}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _mounts_sockets(service: dict[str, Any]) -> bool:
    return f"sockets:{SOCKETS}" in service.get("volumes", [])


def test_every_gateway_server_is_its_replicas_own_socket() -> None:
    services = _compose()["services"]
    gateway = services["gateway"]
    assert _mounts_sockets(gateway)
    assert gateway["group_add"] == [services["users"]["user"].split(":")[1]]
    paths = []
    for variable, replica in REPLICAS.items():
        path = services[replica]["environment"]["UNIX_SOCKET"]
        assert path.startswith(f"{SOCKETS}/"), replica
        assert gateway["environment"][variable] == f"unix@{path}", variable
        assert _mounts_sockets(services[replica]), replica
        paths.append(path)
    assert len(set(paths)) == len(paths), "two replicas share a socket file"


def test_the_sockets_volume_is_in_memory_and_closed_to_other_users() -> None:
    compose = _compose()
    options = compose["volumes"]["sockets"]["driver_opts"]
    assert options["type"] == "tmpfs"
    user, group = compose["services"]["users"]["user"].split(":")
    assert sorted(options["o"].split(",")) == sorted([f"uid={user}", f"gid={group}", "mode=0750"])


def test_the_tcp_override_names_every_gateway_server() -> None:
    override = yaml.safe_load((ROOT / "bench/gateway-over-tcp.yaml").read_text())
    addresses = override["services"]["gateway"]["environment"]
    assert set(addresses) == set(REPLICAS)
    for variable, replica in REPLICAS.items():
        assert addresses[variable].startswith(f"{replica.removesuffix('-2')}-"), variable


def test_the_frontend_calls_users_and_thoughts_over_both_replicas_sockets() -> None:
    services = _compose()["services"]
    for frontend in ("frontend", "frontend-2"):
        environment = services[frontend]["environment"]
        assert _mounts_sockets(services[frontend]), frontend
        for backend in ("users", "thoughts"):
            paths = environment[f"{backend.upper()}_UNIX_SOCKETS"].split(",")
            replicas = [services[backend], services[f"{backend}-2"]]
            assert paths == [replica["environment"]["UNIX_SOCKET"] for replica in replicas]


def test_no_service_believes_a_tcp_peers_forwarded_address() -> None:
    """Users counts failed logins per visitor address: believed from its socket's peers only
    (the gateway, the frontend), never from another container or the host's published port."""
    for name, service in _compose()["services"].items():
        assert "FORWARDED_ALLOW_IPS" not in service.get("environment", {}), name
