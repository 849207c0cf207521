"""Our thoughts service against the book's stack, the way the book's clients called it (issue 15,
target 7): ONE server process each, a NEW TCP connection per request (`hey -c 16
-disable-keepalive`), on the benchmark's data.

    make book-reference                                  # the book stack's venv, once
    BENCH_PG_PREFIX=mythoughts_bench_me .venv/bin/python bench/book_setting.py --db postgresql

Two paths per target: the framework's floor, `/admin/version/` (no database; ours with
ADMIN_TOKEN set and the token sent, so the admin guard does its whole check), and one thought by
id. The targets, each started alone on the same data, then measured in turn, round after round
(--rounds), so that a change in the machine's load hits all of them alike:

- `ours/<server>`: the thoughts service (production settings, INFO access log to a file, one
  worker) under each server of --servers: `uvicorn` is `python -m thoughts_service serve`
  itself (servicekit.server: httptools, uvloop, the header limits); the others serve the same
  app factory with their own command line, for comparison only.
- `book/http` and `book/http-socket`: bench/book_reference/ (Flask + flask-restx + Flask-SQLAlchemy
  on psycopg2) under one uWSGI worker, with uWSGI's HTTP router process in front (`--http`) or
  parsing HTTP in the worker itself (`--http-socket`).
- `ceiling/haproxy` (--ceiling): HAProxy, one thread, answering both paths itself with a fixed
  JSON body (`http-request return`): about the least one HTTP request on a new connection can
  cost a server in C, so its req/s is what this machine and hey allow in this setting at all.

Reported per target and path: req/s, p50/p99 (hey's), non-2xx and socket errors, and the CPU
time per request of the server's processes (all of them: uWSGI's master and router too), of
PostgreSQL's backends serving the run's databases, and of hey, from /proc as
bench/run.py measures it; `machine` is the busy time of all the machine's cores per request
(/proc/stat: everything, the kernel's softirq work on the loopback packets too, and whatever
else runs), whose inverse times the cores is the rate the machine could give at that cost.
The ratios compare each of ours to `book/http` in the same run (the medians over the rounds):
req/s ours / book's, and CPU per request book's / ours. The JSON goes to bench/results/ with
the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from run import (
    CLOCK_TICKS,
    RESULTS_DIR,
    ROOT,
    CpuMeter,
    Databases,
    Reading,
    Service,
    add_data_arguments,
    build_services,
    git_commit,
    prepare_data,
    processes_cpu,
    say,
)

from testkit import free_port

BOOK_DIR = ROOT / "bench" / "book_reference"
BOOK_VENV = ROOT / "var" / "book-reference-venv"
PATHS = ("/admin/version/", "thought by id")
SERVERS = ("uvicorn", "granian", "hypercorn")


class ProcessTree(Service):
    """A server whose every process counts: the one started and all its descendants."""

    def workers(self) -> list[int]:
        assert self.process is not None
        pids, index = [self.process.pid], 0
        while index < len(pids):
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{pids[index]}/task/{pids[index]}/children").read_text()
                pids.extend(int(child) for child in children.split())
            index += 1
        return pids


@dataclass(frozen=True)
class Target:
    name: str
    process: ProcessTree
    ready_path: str


def our_targets(service: Service, servers: list[str], before: Path | None) -> list[Target]:
    """The thoughts service under each server, each on a port of its own; with `before` (the
    python of another checkout's venv), that checkout's service too, under uvicorn."""
    targets = []
    if before is not None:
        port = free_port()
        env = {**service.env, "PORT": str(port)}
        log = service.log_path.with_name("thoughts-before.log")
        argv = [str(before), *service.argv[1:]]
        process = ProcessTree("thoughts", argv, env, port, log)
        targets.append(Target("before/uvicorn", process, "/healthz"))
    for server in servers:
        port = free_port()
        env = {**service.env, "PORT": str(port)}
        factory = "thoughts_service.main:create_app"
        bin_dir = Path(sys.executable).parent
        argv = {
            "uvicorn": service.argv,
            "granian": [
                str(bin_dir / "granian"),
                *("--interface", "asgi", "--factory", "--loop", "uvloop"),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
                *("--runtime-threads", "1", "--no-ws", factory),
            ],
            "hypercorn": [
                str(bin_dir / "hypercorn"),
                *("--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "uvloop"),
                f"{factory}()",
            ],
        }[server]
        if not Path(argv[0]).exists() and server != "uvicorn":
            say(f"book setting: {server} is not installed in this venv; skipped")
            continue
        log = service.log_path.with_name(f"thoughts-{server}.log")
        targets.append(
            Target(f"ours/{server}", ProcessTree("thoughts", argv, env, port, log), "/healthz")
        )
    return targets


def book_targets(databases: Databases, work_dir: Path) -> list[Target]:
    if databases.backend == "postgresql":
        url = databases.postgres_urls["thoughts"].replace("postgresql://", "postgresql+psycopg2://")
    else:
        url = f"sqlite:///{work_dir / 'thoughts.db'}"
    targets = []
    for mode in ("http", "http-socket"):
        port = free_port()
        argv = [
            str(BOOK_VENV / "bin" / "uwsgi"),
            *("--ini", str(BOOK_DIR / "uwsgi.ini"), "--chdir", str(BOOK_DIR)),
            *(f"--{mode}", f"127.0.0.1:{port}"),
        ]
        log = work_dir / f"book-{mode}.log"
        process = ProcessTree("book", argv, {"DATABASE_URL": url}, port, log)
        targets.append(Target(f"book/{mode}", process, "/admin/version/"))
    return targets


CEILING_GLOBAL = """\
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout client 10s
    timeout server 10s
    timeout connect 5s
"""


def ceiling_config(port: int, thought_id: int) -> str:
    """HAProxy's configuration for the ceiling: one thread answering both paths itself."""

    def answer(body: dict[str, Any], condition: str = "") -> str:
        quoted = json.dumps(body, separators=(",", ":")).replace('"', '\\"')
        action = "http-request return status 200 content-type application/json string"
        return f'    {action} "{quoted}"{condition}\n'

    return (
        CEILING_GLOBAL
        + f"frontend ceiling\n    bind 127.0.0.1:{port}\n"
        + answer({"id": thought_id}, " if { path_beg /api/thoughts/ }")
        + answer({"version": "ceiling", "commit": "none"})
    )


def ceiling_target(work_dir: Path, thought_id: int) -> Target | None:
    """HAProxy answering both paths itself: the setting's ceiling (see the module's text)."""
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        say("book setting: haproxy is not installed; no ceiling")
        return None
    port = free_port()
    config = work_dir / "ceiling-haproxy.cfg"
    config.write_text(ceiling_config(port, thought_id))
    argv = [haproxy, "-db", "-f", str(config)]  # -db: in the foreground
    process = ProcessTree("ceiling", argv, {}, port, work_dir / "ceiling-haproxy.log")
    return Target("ceiling/haproxy", process, "/admin/version/")


def machine_cpu() -> Reading:
    """The busy time of all the machine's cores so far (/proc/stat's first line, all but idle
    and iowait; guest time is already in user), as one member of a CpuMeter group."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return {"machine": (user + nice + system + irq + softirq + steal) / CLOCK_TICKS}


def sanity_check(url: str, path: str, headers: dict[str, str], thought_id: int) -> None:
    response = httpx.get(url, headers=headers, timeout=10)
    response.raise_for_status()
    body = response.json()
    wrong = body.get("id") != thought_id if path == "thought by id" else "version" not in body
    if wrong:
        raise SystemExit(f"book setting: wrong answer from {url}: {body}")


_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.MULTILINE)
_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.+)$", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(\d+)% in ([\d.]+) secs", re.MULTILINE)


def run_hey(url: str, headers: dict[str, str], seconds: int, connections: int) -> dict[str, Any]:
    argv = ["hey", "-z", f"{seconds}s", "-c", str(connections), "-disable-keepalive"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    started = time.perf_counter()
    output = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - started
    statuses = {code: int(n) for code, n in _STATUS.findall(output)}
    errors_part = output.split("Error distribution:", 1)
    errors = sum(int(n) for n, _ in _ERROR.findall(errors_part[1])) if len(errors_part) > 1 else 0
    percentiles = {int(p): float(s) * 1000 for p, s in _PERCENTILE.findall(output)}
    responses = sum(statuses.values())
    return {
        "responses": responses,
        "rps": responses / elapsed,
        "p50_ms": percentiles.get(50, 0.0),
        "p99_ms": percentiles.get(99, 0.0),
        "non_2xx": sum(n for code, n in statuses.items() if not code.startswith("2")),
        "socket_errors": errors,
    }


def measure(
    target: Target,
    databases: Databases,
    args: argparse.Namespace,
    admin_token: str,
    thought_id: int,
) -> list[dict[str, Any]]:
    """Starts the target, measures both paths, stops it."""
    process = target.process
    process.launch()
    rows = []
    try:
        process.wait_until(target.ready_path, timeout=60)
        for path in PATHS:
            ours = target.name.startswith(("ours/", "before/"))
            route = f"/api/thoughts/{thought_id}/" if path == "thought by id" else path
            admin = ours and "admin" in route
            headers = {"Authorization": f"Bearer {admin_token}"} if admin else {}
            url = process.url + route
            sanity_check(url, path, headers, thought_id)
            if args.warmup:
                run_hey(url, headers, args.warmup, args.connections)
            groups = {"server": processes_cpu(process.workers)}
            if databases.backend == "postgresql":
                # Only the backends of the run's databases: the server is shared.
                groups["postgres"] = processes_cpu(databases.backend_pids)
            groups["machine"] = machine_cpu
            meter = CpuMeter(groups)
            meter.start()
            result = run_hey(url, headers, args.duration, args.connections)
            cpu = meter.per_request(result["responses"])
            cpu["hey"] = cpu.pop("wrk")  # the meter's name for the load generator it waited for
            result["cpu_us_per_request"] = cpu
            rows.append({"target": target.name, "path": path, **result})
            say(
                f"  {target.name:<16} {path:<16} {result['rps']:>7.0f} req/s "
                f"p99 {result['p99_ms']:>7.2f} ms, server "
                f"{result['cpu_us_per_request']['server']:>6.0f} us CPU per request"
            )
    finally:
        process.stop()
    return rows


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target and path: the median over the rounds, and the ratios to book/http's medians."""
    keys = list(dict.fromkeys((r["target"], r["path"]) for r in rows))
    summary = []
    for target, path in keys:
        mine = [r for r in rows if r["target"] == target and r["path"] == path]
        groups = mine[0]["cpu_us_per_request"].keys()
        summary.append(
            {
                "target": target,
                "path": path,
                "rps": _median([r["rps"] for r in mine]),
                "p50_ms": _median([r["p50_ms"] for r in mine]),
                "p99_ms": _median([r["p99_ms"] for r in mine]),
                "errors": sum(r["non_2xx"] + r["socket_errors"] for r in mine),
                "cpu_us_per_request": {
                    g: _median([r["cpu_us_per_request"][g] for r in mine]) for g in groups
                },
            }
        )
    for row in summary:
        book = next(
            (s for s in summary if s["target"] == "book/http" and s["path"] == row["path"]), None
        )
        if book is not None:
            row["rps_vs_book"] = round(row["rps"] / book["rps"], 2)
            row["cpu_vs_book"] = round(
                book["cpu_us_per_request"]["server"] / row["cpu_us_per_request"]["server"], 2
            )
    return summary


def print_summary(summary: list[dict[str, Any]]) -> None:
    groups = list(summary[0]["cpu_us_per_request"])
    header = (
        f"{'target':<16} {'path':<16} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        + " ".join(f"{g + ' us':>11}" for g in groups)
        + f" {'req/s x':>8} {'CPU x':>6}"
    )
    say(header)
    say("-" * len(header))
    for s in summary:
        say(
            f"{s['target']:<16} {s['path']:<16} {s['rps']:>7.0f} {s['p50_ms']:>7.2f} "
            f"{s['p99_ms']:>7.2f} {s['errors']:>6} "
            + " ".join(f"{s['cpu_us_per_request'][g]:>11.0f}" for g in groups)
            + f" {s.get('rps_vs_book', 0):>8.2f} {s.get('cpu_vs_book', 0):>6.2f}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, "postgresql")
    parser.add_argument("--connections", type=int, default=16, help="hey -c")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per path")
    parser.add_argument("--rounds", type=int, default=2, help="every target, this many times")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="servers for our app, comma-separated, of: " + ", ".join(SERVERS),
    )
    parser.add_argument("--no-book", action="store_true", help="ours only (no uWSGI venv)")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also measure HAProxy answering both paths itself: the setting's ceiling",
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="PYTHON",
        help="also measure another checkout's thoughts service (the python of its venv), "
        "as before/uvicorn, alternating with ours: a change's effect within one run",
    )
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("hey") is None:
        say("book setting: hey is not installed (apt-get install hey)")
        return 2
    if not args.no_book and not (BOOK_VENV / "bin" / "uwsgi").exists():
        say("book setting: no book reference venv: run `make book-reference` (or --no-book)")
        return 2
    work_dir = (args.work_dir or ROOT / "var" / "bench" / args.db).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    databases = Databases(args.db, work_dir)
    facts = prepare_data(databases, args)
    thought_id = (facts.min_id + facts.max_id) // 2
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    admin_token = secrets.token_urlsafe(32)
    extra_env = {"ADMIN_TOKEN": admin_token, **dict(item.split("=", 1) for item in args.env)}
    services = build_services(databases, work_dir, 1, extra_env)
    users = services["users"]  # the thoughts service starts once users answers
    targets = our_targets(services["thoughts"], args.servers.split(","), args.before)
    if not args.no_book:
        targets += book_targets(databases, work_dir)
    ceiling = ceiling_target(work_dir, thought_id) if args.ceiling else None
    if ceiling is not None:
        targets.append(ceiling)
    say(
        f"book setting: {args.db}, {facts.thoughts:,} thoughts, thought {thought_id}, "
        f"hey -c {args.connections} -disable-keepalive, {args.duration} s, {args.rounds} rounds"
    )
    rows: list[dict[str, Any]] = []
    users.start(timeout=60)
    try:
        for round_number in range(args.rounds):
            say(f"round {round_number + 1}, load average {os.getloadavg()[0]:.1f}")
            for target in targets:
                rows += measure(target, databases, args, admin_token, thought_id)
    finally:
        users.stop()
    summary = summarise(rows)
    say("")
    print_summary(summary)
    load_after = os.getloadavg()
    say(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{started:%Y%m%dT%H%M%SZ}-book-setting-{args.db}.json"
    path.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "commit": git_commit(),
                "db": args.db,
                "thoughts": facts.thoughts,
                "thought_id": thought_id,
                "connections": args.connections,
                "duration_s": args.duration,
                "load_average_before": load_before,
                "load_average_after": load_after,
                "env": {k: v for k, v in extra_env.items() if k != "ADMIN_TOKEN"},
                "summary": summary,
                "rounds": rows,
            },
            indent=2,
        )
    )
    say(f"book setting: results in {path}")
    failed = [s for s in summary if s["errors"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
