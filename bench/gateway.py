"""The benchmark's scenarios through the HAProxy gateway of the compose system, and against each
service's own port, in the same run: what the gateway costs (issue 15, target 6).

    make images OFFLINE_BASE=1 IMAGE_TAG=gateway-bench
    export COMPOSE_PROJECT_NAME=mtgw IMAGE_TAG=gateway-bench SERVICE_WORKERS=2 \\
        GATEWAY_PORT=28080 GATEWAY_STATS_PORT=28404 THOUGHTS_PORT=28000 USERS_PORT=28001 \\
        FRONTEND_PORT=28002 TASKS_PORT=28003 FRONTEND_INTERNAL_PORT=29002 PROMETHEUS_PORT=29090
    make compose-up OFFLINE_BASE=1
    .venv/bin/python bench/gateway.py --thoughts 1000000
    .venv/bin/docker-compose down -v

What it does, in order:

1. Finds the compose project's containers (COMPOSE_PROJECT_NAME, or --project) and their
   addresses on the compose network, which this machine reaches directly: the load goes to a
   service's own port, or to the gateway's 8080, without Docker's port publishing in between
   (--published goes through the ports published on 127.0.0.1 instead, for both paths).
2. Loads --thoughts thoughts into compose's PostgreSQL with `python -m devtools load` (as
   bench/run.py does; idempotent), connecting as each service's own role with the URLs of the
   compose secrets (COMPOSE_SECRETS_DIR, default var/compose-secrets).
3. Takes each route's second replica (`new-2`) out of the gateway (drain, then maintenance,
   through the runtime API; back in at the end), so that both paths reach the same server
   processes: replica 1 of each service, with SERVICE_WORKERS workers.
4. Runs bench/run.py's scenarios, each direct and then through the gateway (alternating the
   order over --rounds), with run.py's sanity check, warm-up, wrk and checks. `/healthz` is the
   frontend's both ways: the gateway routes `/healthz` to the frontend, its default backend.
   Login runs with as many connections as one address may have logins in progress: through
   the gateway they all come from one address (same_work_both_ways).
5. Prints run.py's tables for each path, then the comparison: req/s through the gateway as a
   fraction of direct, p99 both ways, the gateway container's CPU per request and the CPU per
   request of everything; the JSON goes to bench/results/<date>-gateway.json.

CPU per request is read from /proc for each container's processes (matched by the container's
id in /proc/<pid>/cgroup) and for the host's Docker processes (dockerd, containerd and its
shims, docker-proxy), which carry every container's log lines and any published port.
Exit status 1 when a request failed or an acknowledged thought is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from run import (
    RESULTS_DIR,
    ROOT,
    SETTLE_SECONDS,
    CpuMeter,
    Databases,
    Reading,
    Result,
    Run,
    Scenario,
    pids_named,
    prepare_data,
    prepare_scenarios,
    print_table,
    processes_cpu,
    run_scenario,
    say,
    settle,
    wrk_version,
)

from devtools.gateway import RuntimeAPI, compose_command, drain, ready, wait_until_up
from users_service.settings import UsersSettings

DOCKER = "/usr/bin/docker"
# The compose services the scenarios reach, the port each listens on, and the gateway's route.
SERVICE_PORTS = {"users": 8001, "thoughts": 8000, "frontend": 8002}
GATEWAY_PORT = 8080
# Every compose service whose CPU is metered; a service's second replica counts with it.
METERED = ("thoughts", "users", "frontend", "postgres", "redis", "gateway")
# The host's processes that serve every container: its log lines, its published ports.
DOCKER_COMMANDS = ("dockerd", "containerd", "containerd-shim", "docker-proxy")
MODES = ("direct", "gateway")
# The users service's default PASSWORD_CHECKS_PER_CLIENT (see same_work_both_ways).
PER_ADDRESS: int = UsersSettings.model_fields["password_checks_per_client"].default


@dataclass(frozen=True)
class Container:
    service: str  # compose's service name: thoughts, thoughts-2, gateway, ...
    id: str
    address: str  # on the compose network
    pid: int  # its first process, whose cgroup is the container's
    published: dict[int, str]  # container port -> host:port where compose.yaml publishes it


def project_containers(project: str) -> dict[str, Container]:
    """The running containers of the compose project, by service name."""
    listed = subprocess.run(
        [DOCKER, "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not listed:
        raise RuntimeError(
            f"compose project {project!r} runs no container: start it first (bench/gateway.py)"
        )
    inspected = json.loads(
        subprocess.run(
            [DOCKER, "inspect", *listed], capture_output=True, text=True, check=True
        ).stdout
    )
    containers = {}
    for item in inspected:
        service = item["Config"]["Labels"]["com.docker.compose.service"]
        addresses = [
            n["IPAddress"] for n in item["NetworkSettings"]["Networks"].values() if n["IPAddress"]
        ]
        if len(addresses) != 1:  # compose.yaml puts every container on one network
            raise RuntimeError(f"{service}: expected one network address, found {addresses}")
        published = {
            int(port.split("/")[0]): f"{bindings[0]['HostIp']}:{bindings[0]['HostPort']}"
            for port, bindings in (item["NetworkSettings"]["Ports"] or {}).items()
            if bindings
        }
        containers[service] = Container(
            service, item["Id"], addresses[0], item["State"]["Pid"], published
        )
    return containers


def cgroup_cpu(pid: int) -> Callable[[], float]:
    """A CpuMeter group: the CPU seconds of the control group of process `pid` (a container's):
    every process it ran, its health checks' short-lived ones included. cgroup v1's cpuacct or
    v2's cpu.stat, whichever the machine has."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        folder = Path("/sys/fs/cgroup") / controllers / path.lstrip("/")
        if "cpuacct" in controllers.split(","):
            usage = folder / "cpuacct.usage"  # nanoseconds
            return lambda: int(usage.read_text()) / 1e9
        if controllers == "":
            stat = Path("/sys/fs/cgroup") / path.lstrip("/") / "cpu.stat"
            return lambda: int(stat.read_text().split("usage_usec ")[1].split()[0]) / 1e6
    raise RuntimeError(f"no CPU accounting cgroup for process {pid}")


def containers_cpu(containers: list[Container]) -> Callable[[], Reading]:
    """A CpuMeter group: these containers' cgroups, each a member."""
    readers = {container.id: cgroup_cpu(container.pid) for container in containers}
    return lambda: {container_id: read() for container_id, read in readers.items()}


def cpu_groups(containers: dict[str, Container]) -> dict[str, Callable[[], Reading]]:
    """CpuMeter groups: each metered service's containers (both replicas), Docker's processes."""
    groups = {}
    for service in METERED:
        replicas = [c for c in containers.values() if c.service in (service, f"{service}-2")]
        groups[service] = containers_cpu(replicas)
    groups["docker"] = processes_cpu(lambda: pids_named(*DOCKER_COMMANDS))
    return groups


def database_urls(containers: dict[str, Container], secrets_dir: Path) -> dict[str, str]:
    """Each service's database URL from its compose secret, with compose's PostgreSQL reached at
    its container address (the name `postgres` resolves only inside the compose network)."""
    address = containers["postgres"].address
    urls = {}
    for service in ("thoughts", "users"):
        parts = urlsplit((secrets_dir / f"{service}_database_url").read_text().strip())
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{address}:{parts.port or 5432}"
        urls[service] = urlunsplit(parts._replace(scheme="postgresql", netloc=netloc))
    return urls


@dataclass(frozen=True)
class Targets:
    """Where each mode sends the requests: a service's own port, or the gateway."""

    direct: dict[str, str]  # service -> base URL
    gateway: str

    def base(self, mode: str, service: str) -> str:
        return self.direct[service] if mode == "direct" else self.gateway


def targets(containers: dict[str, Container], published: bool) -> Targets:
    def url(service: str, port: int) -> str:
        container = containers[service]  # replica 1: the one compose.yaml publishes
        address = container.published[port] if published else f"{container.address}:{port}"
        return f"http://{address}"

    return Targets(
        {service: url(service, port) for service, port in SERVICE_PORTS.items()},
        url("gateway", GATEWAY_PORT),
    )


@contextlib.contextmanager
def one_replica_each(api: RuntimeAPI) -> Any:
    """Only replica 1 in each route while the scenarios run, replica 2 back afterwards."""
    routes = list(SERVICE_PORTS)
    try:
        for route in routes:
            drain(api, route, "new-2", maint=True)
        yield
    finally:
        for route in routes:
            ready(api, route, "new-2")


@dataclass
class Pair:
    """One scenario's results both ways, one of each per round."""

    name: str
    direct: list[Result]
    gateway: list[Result]

    def summary(self) -> dict[str, Any]:
        def rate(results: list[Result]) -> float:
            return mean(r.rps for r in results)

        def cpu(results: list[Result], group: str | None = None) -> float:
            return mean(
                r.cpu_us_per_request.get(group, 0) if group else sum(r.cpu_us_per_request.values())
                for r in results
            )

        ratios = [g.rps / d.rps for d, g in zip(self.direct, self.gateway, strict=True) if d.rps]
        return {
            "name": self.name,
            "direct_rps": round(rate(self.direct), 1),
            "gateway_rps": round(rate(self.gateway), 1),
            "ratio": round(rate(self.gateway) / rate(self.direct), 3) if rate(self.direct) else 0,
            "ratio_min": round(min(ratios), 3) if ratios else 0,
            "ratio_max": round(max(ratios), 3) if ratios else 0,
            "direct_p99_ms": max(r.p99_ms for r in self.direct),
            "gateway_p99_ms": max(r.p99_ms for r in self.gateway),
            "gateway_cpu_us": round(cpu(self.gateway, "gateway"), 1),
            "direct_total_cpu_us": round(cpu(self.direct), 1),
            "gateway_total_cpu_us": round(cpu(self.gateway), 1),
            # What the throughput ratio is when every process shares the same cores and they
            # are the bottleneck: CPU per request direct / through the gateway. Unlike req/s it
            # hardly depends on what else the machine runs meanwhile.
            "cpu_ratio": round(cpu(self.direct) / cpu(self.gateway), 3) if cpu(self.gateway) else 0,
        }


def idle_cpu(meter: CpuMeter, seconds: float) -> dict[str, float]:
    """Each group's CPU in microseconds per second while no request is sent: Docker's health
    probes (a Python process every 5 s in each container), the gateway's checks, scrapes."""
    meter.start()
    time.sleep(seconds)
    used = meter.per_request(1)  # microseconds over the whole pause
    return {group: round(us / seconds, 1) for group, us in used.items() if group != "wrk"}


def without_idle(result: Result, idle: dict[str, float]) -> dict[str, float]:
    """CPU per request minus what the groups use anyway over the run's duration (requests / rps):
    at a few hundred requests per second the probes would otherwise weigh as much as a request."""
    if not result.rps:
        return result.cpu_us_per_request
    return {
        group: round(us - idle.get(group, 0.0) / result.rps, 1)
        for group, us in result.cpu_us_per_request.items()
    }


def print_comparison(summaries: list[dict[str, Any]]) -> None:
    header = (
        f"{'scenario':<20} {'direct':>8} {'gateway':>8} {'ratio':>6} {'range':>11} "
        f"{'p99 d ms':>9} {'p99 g ms':>9} {'haproxy':>8} {'CPU d':>7} {'CPU g':>7} {'CPU d/g':>7}"
    )
    say(header)
    say("-" * len(header))
    for s in summaries:
        say(
            f"{s['name']:<20} {s['direct_rps']:>8.0f} {s['gateway_rps']:>8.0f} {s['ratio']:>6.2f} "
            f"{s['ratio_min']:>5.2f}-{s['ratio_max']:<5.2f} {s['direct_p99_ms']:>9.2f} "
            f"{s['gateway_p99_ms']:>9.2f} {s['gateway_cpu_us']:>8.0f} "
            f"{s['direct_total_cpu_us']:>7.0f} {s['gateway_total_cpu_us']:>7.0f} "
            f"{s['cpu_ratio']:>7.2f}"
        )
    say(
        "req/s direct and through the gateway (mean of the rounds), gateway/direct (and its "
        "range over the rounds), p99 (worst round), the gateway container's CPU us per request, "
        "all metered CPU us per request both ways and their ratio (the throughput ratio when "
        "the cores are the bottleneck); CPU without the idle system's own (--idle)."
    )


def same_work_both_ways(scenario: Scenario) -> Scenario:
    """The scenario as both paths can serve it alike.

    `/healthz` is the frontend's both ways: the gateway routes it to the frontend, its default
    backend. Login: through the gateway every login comes from one address, the one HAProxy saw
    (it replaces the client's X-Forwarded-For, issue 14), while direct the service believes
    login.lua's address per request. The users service lets one address have only
    PASSWORD_CHECKS_PER_CLIENT logins in progress (per worker) and refuses more at once with 503
    and Retry-After: with bench/run.py's 4 connections, the gateway's run got 121-181 of those
    and direct none. So logins run with that many connections both ways: none refused either
    way, the same work (bench/README.md, "Through the gateway")."""
    if scenario.name == "healthz":
        return replace(scenario, service="frontend")
    if scenario.name == "login":
        return replace(scenario, connections=PER_ADDRESS)
    return scenario


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--project",
        default=os.environ.get("COMPOSE_PROJECT_NAME", "mythoughts"),
        help="the compose project (default: COMPOSE_PROJECT_NAME, else compose.yaml's name)",
    )
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        default=Path(os.environ.get("COMPOSE_SECRETS_DIR", ROOT / "var" / "compose-secrets")),
    )
    parser.add_argument("--thoughts", type=int, default=1_000_000, help="data size")
    parser.add_argument("--authors", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=32, help="wrk concurrency")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario and mode")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up, each time")
    parser.add_argument("--timeout", type=int, default=10, help="wrk's per-request timeout")
    parser.add_argument("--rounds", type=int, default=1, help="direct and gateway, alternating")
    parser.add_argument(
        "--idle",
        type=float,
        default=10,
        help="seconds of measuring the system's CPU with no requests (health checks, probes), "
        "subtracted from every CPU per request",
    )
    parser.add_argument("--only", action="append", help="run only these scenarios (repeatable)")
    parser.add_argument(
        "--published", action="store_true", help="through the ports published on the host"
    )
    parser.add_argument(
        "--both-replicas",
        action="store_true",
        help="leave replica 2 in the gateway (production's shape; direct still reaches one)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.fresh = False  # compose's databases are kept; the loader adds only what is missing
    return args


def run_pairs(
    scenarios: list[Scenario],
    targets: Targets,
    api: RuntimeAPI,
    meter: CpuMeter,
    idle: dict[str, float],
    databases: Databases,
    args: argparse.Namespace,
    work_dir: Path,
) -> tuple[dict[str, Run], list[Pair]]:
    runs = {mode: Run() for mode in MODES}
    pairs = []
    for scenario in scenarios:
        pair = Pair(scenario.name, [], [])
        for round_number in range(args.rounds):
            order = MODES if round_number % 2 == 0 else MODES[::-1]
            for mode in order:
                if mode == "gateway":
                    # A saturated server answers the gateway's checks late (timeout check 1s):
                    # after the direct run the gateway may still count it down.
                    wait_until_up(api, scenario.service, "new-1", timeout=60)
                url = targets.base(mode, scenario.service) + scenario.path
                # The previous run's last requests, on the same servers, are not this run's:
                # through the gateway they would hold this run's address's login places.
                time.sleep(SETTLE_SECONDS)
                result = run_scenario(scenario, url, meter, databases, args, work_dir, runs[mode])
                result.cpu_us_per_request = without_idle(result, idle)
                runs[mode].results.append(result)
                getattr(pair, mode).append(result)
                refused = {k: v for k, v in result.statuses.items() if not k.startswith("2")}
                say(
                    f"  {scenario.name:<20} {mode:<8} {result.rps:>8.0f} req/s  "
                    f"p99 {result.p99_ms:>8.2f} ms  errors {result.errors}"
                    + (f" (statuses {refused})" if refused else "")
                )
        pairs.append(pair)
    return runs, pairs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    work_dir = ROOT / "var" / "bench" / "gateway"
    work_dir.mkdir(parents=True, exist_ok=True)
    containers = project_containers(args.project)
    databases = Databases("postgresql", work_dir, database_urls(containers, args.secrets_dir))
    say(f"bench: compose project {args.project}, {args.thoughts:,} thoughts")
    facts = prepare_data(databases, args)
    where = targets(containers, args.published)
    say(f"bench: direct {where.direct}, gateway {where.gateway}")
    admin_token = (args.secrets_dir / "admin_token").read_text().strip()
    scenarios = [
        same_work_both_ways(s)
        for s in prepare_scenarios(where.direct["users"], facts, args, admin_token)
    ]
    meter = CpuMeter(cpu_groups(containers))
    compose = [*compose_command(), "-f", str(ROOT / "compose.yaml"), "-p", args.project]
    api = RuntimeAPI("compose", compose=compose)
    replicas = contextlib.nullcontext() if args.both_replicas else one_replica_each(api)
    try:
        with replicas:
            idle = idle_cpu(meter, args.idle)
            say(
                "bench: idle CPU, ms per second: "
                + ", ".join(f"{g} {v / 1000:.1f}" for g, v in idle.items())
            )
            runs, pairs = run_pairs(scenarios, where, api, meter, idle, databases, args, work_dir)
    finally:
        # As bench/run.py: delete the posts and VACUUM, so the next run measures loaded data.
        databases.remove_posted()
    for run in runs.values():
        settle(run)
    summaries = [pair.summary() for pair in pairs]

    load_after = os.getloadavg()
    for mode in MODES:
        say(
            f"\n{mode}: {facts.thoughts:,} thoughts, wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration}s, {args.rounds} round(s)"
        )
        print_table(runs[mode].results, {})
    say("")
    print_comparison(summaries)
    say(
        f"\nload average before {load_before[0]:.1f}, after {load_after[0]:.1f} "
        f"({os.cpu_count()} cores)"
    )
    failures = [f"{mode}: {f}" for mode in MODES for f in runs[mode].failures]
    document = {
        "date": started.isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "wrk": wrk_version(),
        "settings": {
            "project": args.project,
            "published_ports": args.published,
            "both_replicas": args.both_replicas,
            "service_workers": _workers(containers["thoughts"]),
            "connections": args.connections,
            "threads": args.threads,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
        },
        "data": asdict(facts),
        "idle_cpu_us_per_second": idle,
        "comparison": summaries,
        "direct": [asdict(r) for r in runs["direct"].results],
        "gateway": [asdict(r) for r in runs["gateway"].results],
        "create_thought_check": {mode: runs[mode].created_check for mode in MODES},
        "failures": failures,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}-gateway.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    say(f"bench: results in {path}")
    if failures:
        say("bench: FAILED\n  " + "\n  ".join(failures))
        return 1
    return 0


def _workers(container: Container) -> str:
    """WORKERS as the container runs with (SERVICE_WORKERS at `compose up`)."""
    inspected = subprocess.run(
        [DOCKER, "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", container.id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next((line[8:] for line in inspected.splitlines() if line.startswith("WORKERS=")), "?")


if __name__ == "__main__":
    sys.exit(main())
