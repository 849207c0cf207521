"""The MyThoughts benchmark: real services, real databases, a real load generator (wrk).

    .venv/bin/python bench/run.py --db postgresql      # or: make bench DB=postgresql
    .venv/bin/python bench/run.py --db sqlite
    .venv/bin/python bench/run.py --quick              # 5,000 thoughts, 2 s per scenario, SQLite

What it does, in order:

1. Data: `python -m devtools load` fills this run's own databases (SQLite files in the work
   folder, or the PostgreSQL databases `mythoughts_bench_*`) with --thoughts generated thoughts
   and their ~1,000 authors' accounts. Idempotent: a second run reuses what is there.
2. Services: users, thoughts and frontend started with their production command
   (`python -m <service> serve`), the same WORKERS for all, on free ports, logs in the work folder.
3. Every scenario: a sanity request checked with Python (the right answer, not just a 200), a
   short warm-up, then wrk at a fixed concurrency for a fixed time.
4. Report: a table (req/s, p50/p90/p99, errors including non-2xx, req/s as a fraction of the
   /healthz ceiling), the resident memory of every worker process, the targets met or missed;
   the same as JSON in bench/results/ with the machine, versions, date and data size.

With --open-loop, the API reads, posting and the two pages run again at fixed arrival rates
of 25, 50, 80 and 95 % of their measured req/s (--open-loop-loads; bench/openloop.py in
--generator-processes processes: latency from each request's scheduled send, no coordinated
omission); p50/p99/p99.9, the send lag and the CPU per request go in the table and the JSON.

Exit status 1 when any request failed (socket error, timeout or non-2xx), when an acknowledged
thought is missing from the database, or with --check-targets when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from openloop import OpenLoopResult, Request, new_event_loop, run_open_loop

from devtools.stack import Ports, Stack
from devtools.synthetic_thoughts import COMMON_WORD, RARE_EVERY, RARE_WORD
from servicekit.settings import ServiceSettings
from testkit import ServiceProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
LUA_DIR = BENCH_DIR / "lua"
RESULTS_DIR = BENCH_DIR / "results"
# wrk stops with requests in flight and the servers finish them: a login's password check runs
# on for up to the queue's wait (0.5 s) plus a hash (seconds on a loaded machine), holding a core,
# its 19 MiB argon2 block and one of its address's places (PASSWORD_CHECKS_PER_CLIENT). So many
# seconds pass after a warm-up before the measured run, and after the last scenario before the
# workers' memory is read (bench/gateway.py: before each run, as both paths share the servers).
SETTLE_SECONDS = 2.0
# What a service runs with when nothing sets LOG_FLUSH_SECONDS (servicekit.settings).
PRODUCTION_LOG_FLUSH_SECONDS = str(ServiceSettings.model_fields["log_flush_seconds"].default)
PASSWORD = "bench-password"  # noqa: S105 - the generated accounts' password (local only)
WRITER = "bench-writer"  # the account that posts during "create thought"; its rows are removed
POSTGRES_BASE = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
# BENCH_PG_PREFIX lets two benchmarks share one PostgreSQL server without sharing data.
PG_PREFIX = os.environ.get("BENCH_PG_PREFIX", "mythoughts_bench")
PG_DATABASES = {"thoughts": f"{PG_PREFIX}_thoughts", "users": f"{PG_PREFIX}_users"}
PACKAGES = (
    "fastapi",
    "starlette",
    "pydantic",
    "uvicorn",
    "uvloop",
    "httptools",
    "granian",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "orjson",
    "argon2-cffi",
    "httpx",
    "jinja2",
)


# Targets (issue "Benchmarks: a million thoughts ..."), checked on the measured figures.
@dataclass(frozen=True)
class Target:
    scenario: str
    text: str
    check: Callable[[dict[str, Any]], bool]


TARGETS = (
    Target("thought by id", ">= 50% of the /healthz rate", lambda s: s["ceiling_ratio"] >= 0.5),
    Target("search rare word", "p99 < 50 ms", lambda s: s["p99_ms"] < 50),
    Target("my thoughts", "p99 < 50 ms", lambda s: s["p99_ms"] < 50),
    Target("all thoughts", "p99 < 30 ms", lambda s: s["p99_ms"] < 30),
    Target("create thought", ">= 30% of the /healthz rate", lambda s: s["ceiling_ratio"] >= 0.3),
)
RSS_LIMIT_MB = 150
# --open-loop: these scenarios again at fixed arrival rates, fractions of their measured maximum.
OPEN_LOOP_SCENARIOS = (
    "thought by id",
    "all thoughts",
    "search rare word",
    "my thoughts",
    "create thought",
    "frontend home",
    "frontend search",
)
OPEN_LOOP_LOADS = (0.25, 0.5, 0.8, 0.95)
# Issue 15's targets for the p99 at 50 % of the maximum: API reads and posts, and pages.
OPEN_LOOP_P99_TARGET_MS = {"frontend home": 50.0, "frontend search": 50.0}
OPEN_LOOP_P99_TARGET_DEFAULT_MS = 20.0


@dataclass
class Scenario:
    name: str
    service: str
    path: str
    script: str | None = None  # a Lua file of bench/lua/, besides common.lua
    headers: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    expect: int = 200
    check: Callable[[httpx.Response], str | None] | None = None
    method: str = "GET"
    body: dict[str, str] | None = None
    # Overrides --connections for this scenario (login: see scenarios()).
    connections: int | None = None


@dataclass
class Result:
    name: str
    url: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    timeouts: int
    statuses: dict[str, int]
    connections: int = 0
    ceiling_ratio: float = 0.0
    # CPU time per request (user + system) of each group of processes during the run:
    # the services' workers, PostgreSQL's processes and wrk. Where a request's cost goes.
    cpu_us_per_request: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors + self.timeouts


def say(text: str) -> None:
    print(text, flush=True)


# Databases -------------------------------------------------------------------------------------


class Databases:
    """The run's two databases: URLs for the services, plain SQL for counting and cleaning.

    On PostgreSQL they are the run's own on POSTGRES_BASE (created here), unless `postgres_urls`
    names each service's existing database (`postgresql://` URLs; bench/gateway.py: compose's)."""

    def __init__(
        self, backend: str, work_dir: Path, postgres_urls: dict[str, str] | None = None
    ) -> None:
        self.backend = backend
        self.work_dir = work_dir
        self.given = postgres_urls is not None
        self.postgres_urls = postgres_urls or {
            service: f"{POSTGRES_BASE}/{name}" for service, name in PG_DATABASES.items()
        }

    def url(self, service: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.work_dir / f'{service}.db'}"
        return self.postgres_urls[service].replace("postgresql://", "postgresql+asyncpg://", 1)

    def create(self, fresh: bool) -> None:
        if self.backend == "sqlite":
            if fresh:
                for service in PG_DATABASES:
                    for suffix in ("", "-wal", "-shm"):
                        (self.work_dir / f"{service}.db{suffix}").unlink(missing_ok=True)
            return
        if self.given:
            if fresh:
                raise ValueError("--fresh drops only the benchmark's own databases")
            return
        import psycopg

        with psycopg.connect(f"{POSTGRES_BASE}/postgres", autocommit=True) as connection:
            for name in PG_DATABASES.values():
                if fresh:
                    connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                exists = connection.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if not exists:
                    connection.execute(f'CREATE DATABASE "{name}"')

    @contextlib.contextmanager
    def _connect(self, service: str) -> Iterator[Any]:
        if self.backend == "sqlite":
            connection = sqlite3.connect(self.work_dir / f"{service}.db", timeout=30)
            try:
                yield connection
                connection.commit()
            finally:
                connection.close()
            return
        import psycopg

        with psycopg.connect(self.postgres_urls[service]) as pg_connection:
            yield pg_connection

    def query(self, service: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.backend == "postgresql":
            sql = sql.replace("?", "%s")
        with self._connect(service) as connection:
            cursor = connection.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []

    def remove_posted(self) -> None:
        """Deletes what the posting scenario stored, so that the data is what the loader made.

        On PostgreSQL the deleted rows stay behind as dead tuples at the top of the id range
        until a VACUUM, and autovacuum waits for 20 % of the table: a run's "create thought"
        left ~29,000 of them, every run more. Each first page of a search newest first, and
        each planning of a statement with an id past the histogram, walks over them in the
        primary key (PostgreSQL's CPU per "frontend search" page grew from ~400 µs on fresh
        data to ~1,000 µs after a few runs). The VACUUM makes every scenario measure the data
        it was loaded with, however many runs came before."""
        self.query("thoughts", "DELETE FROM thoughts WHERE username = ?", WRITER)
        if self.backend != "postgresql":
            return
        import psycopg

        with psycopg.connect(self.postgres_urls["thoughts"], autocommit=True) as connection:
            connection.execute("VACUUM thoughts")

    def backend_pids(self) -> list[int]:
        """PostgreSQL's processes serving the run's databases (the services' connections). Only
        these: the server may be shared, and another's queries must not count as the run's.
        The server's own background processes (WAL writer, checkpointer) are left out too."""
        rows = self.query(
            "thoughts",
            "SELECT pid FROM pg_stat_activity WHERE datname = ANY(?) AND pid <> pg_backend_pid()",
            [url.rpartition("/")[2] for url in self.postgres_urls.values()],
        )
        return [int(row[0]) for row in rows]

    def version(self) -> str:
        if self.backend == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        return str(self.query("thoughts", "SELECT version()")[0][0]).split(" on ")[0]


# Services --------------------------------------------------------------------------------------


class Service(ServiceProcess):
    """A service of the benchmark: servicekit's test process, plus its worker processes."""

    def workers(self) -> list[int]:
        """The worker processes of the server (children of the supervisor), or itself."""
        assert self.process is not None
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        workers = []
        for child in children:
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
                if b"resource_tracker" not in cmdline:
                    workers.append(int(child))
        return workers or [pid]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (utime and stime of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone: what it used is lost, a rounding error next to a 10 s run
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def pids_named(*commands: str) -> list[int]:
    """The processes on this machine running one of these commands (/proc/<pid>/comm)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in commands:
                    pids.append(int(entry.name))
    return pids


# A group's reading: the CPU seconds so far of each of its members (processes, containers).
Reading = dict[int | str, float]


class CpuMeter:
    """CPU seconds used by each group between start() and per_request(), plus wrk's (this
    process's waited-for children). A group is a function that reads its members' CPU so far:
    a service's workers, the run's PostgreSQL backends, a container's cgroup (bench/gateway.py).
    A member first seen at the end counts whole (a pool's new connection: all of its time is
    the scenario's); one gone by then is left out (what it used is lost)."""

    def __init__(self, groups: dict[str, Callable[[], Reading]]) -> None:
        self._groups = groups
        self._start: dict[str, Reading] = {}
        self._start_wrk = 0.0

    @staticmethod
    def _children() -> float:
        children = os.times()
        return children.children_user + children.children_system

    def start(self) -> None:
        self._start = {name: read() for name, read in self._groups.items()}
        self._start_wrk = self._children()

    def per_request(self, requests: int) -> dict[str, float]:
        used = {}
        for name, read in self._groups.items():
            before = self._start[name]
            used[name] = sum(cpu - before.get(member, 0.0) for member, cpu in read().items())
        used["wrk"] = self._children() - self._start_wrk
        return {name: round(seconds * 1e6 / max(requests, 1), 1) for name, seconds in used.items()}


def processes_cpu(pids: Callable[[], list[int]]) -> Callable[[], Reading]:
    """A CpuMeter group: the processes `pids()` finds at each reading."""
    return lambda: {pid: cpu_seconds(pid) for pid in pids()}


def process_groups(
    services: dict[str, Service], databases: Databases
) -> dict[str, Callable[[], Reading]]:
    """The CpuMeter groups of a benchmark run: each service's workers and, on PostgreSQL, the
    backends serving the run's databases."""
    groups = {name: processes_cpu(service.workers) for name, service in services.items()}
    if databases.backend == "postgresql":
        groups["postgres"] = processes_cpu(databases.backend_pids)
    return groups


def memory_of(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM), in MB, read from /proc."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = int(rest.split()[0]) / 1024
    return values


def build_services(
    databases: Databases, work_dir: Path, workers: int, extra_env: dict[str, str]
) -> dict[str, Service]:
    stack = Stack(
        var_dir=work_dir,
        ports=Ports(
            thoughts=free_port(),
            users=free_port(),
            frontend=free_port(),
            tasks=free_port(),
            frontend_internal=free_port(),
        ),
        overrides={
            "thoughts": {"DATABASE_URL": databases.url("thoughts")},
            "users": {"DATABASE_URL": databases.url("users")},
        },
    )
    stack.ensure_secret_key()
    keys = stack.keys_dir
    if not list(keys.glob("*.key.pem")):
        from users_service.signing import generate_key

        generate_key(keys, "bench-key")
    services = {}
    # The scenarios exercise users, thoughts and the frontend; the tasks service is not benched.
    for service in (s for s in stack.services() if s.name != "tasks"):
        # Production's log writing (lines in batches, servicekit.logs), not the line-at-a-time
        # of a local run's stack and of testkit's processes, unless the run asks for a value
        # (--env LOG_FLUSH_SECONDS=...).
        env = {
            **service.env,
            "WORKERS": str(workers),
            "LOG_FLUSH_SECONDS": PRODUCTION_LOG_FLUSH_SECONDS,
            **extra_env,
        }
        services[service.name] = Service(
            service.name, service.argv("serve"), env, service.port, work_dir / f"{service.name}.log"
        )
    return services


# Load generation -------------------------------------------------------------------------------


def wrk_version() -> str:
    output = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (output.stdout + output.stderr).splitlines()[0].strip()


def lua_script(scenario: Scenario, work_dir: Path) -> Path:
    """The scenario's own Lua (if any) followed by the common status counting and summary."""
    parts = []
    if scenario.script:
        parts.append((LUA_DIR / scenario.script).read_text())
    parts.append((LUA_DIR / "common.lua").read_text())
    path = work_dir / "lua" / f"{re.sub(r'[^a-z0-9]+', '_', scenario.name)}.lua"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(parts))
    return path


def run_wrk(
    url: str,
    scenario: Scenario,
    script: Path,
    *,
    seconds: int,
    connections: int,
    threads: int,
    timeout: int,
) -> Result:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout}s",
        "-s",
        str(script),
    ]
    for name, value in scenario.headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    completed = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **scenario.env}, check=False
    )
    line = next((x for x in completed.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    statuses = {str(k): int(v) for k, v in data["statuses"].items()}
    ok = sum(v for k, v in statuses.items() if 200 <= int(k) < 300)
    errors = data["errors"]
    latency = data["latency_us"]
    return Result(
        name=scenario.name,
        url=url,
        rps=round(data["requests"] / (data["duration_us"] / 1e6), 1),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        requests=data["requests"],
        non_2xx=sum(statuses.values()) - ok,
        socket_errors=errors["connect"] + errors["read"] + errors["write"],
        timeouts=errors["timeout"],
        statuses=statuses,
        connections=connections,
    )


# Scenarios -------------------------------------------------------------------------------------


def _json_list(
    check: Callable[[list[dict[str, Any]]], str | None],
) -> Callable[[httpx.Response], str | None]:
    def inner(response: httpx.Response) -> str | None:
        body = response.json()
        if not isinstance(body, list):
            return f"expected a JSON list, got {type(body).__name__}"
        return check(body)

    return inner


def _page_of(
    size: int, predicate: Callable[[dict[str, Any]], bool], what: str
) -> Callable[[httpx.Response], str | None]:
    def check(items: list[dict[str, Any]]) -> str | None:
        if len(items) != size:
            return f"expected a full page of {size}, got {len(items)}"
        bad = [item for item in items if not predicate(item)]
        return f"{len(bad)} items are not {what}: {bad[:1]}" if bad else None

    return _json_list(check)


def scenarios(
    *,
    min_id: int,
    max_id: int,
    author: str,
    author_token: str,
    writer_token: str,
    authors: int,
    rare_hits: int,
) -> list[Scenario]:
    page = 20
    ids = list(range(min_id, max_id + 1))
    return [
        Scenario("healthz", "thoughts", "/healthz"),
        Scenario(
            "thought by id",
            "thoughts",
            "/api/thoughts/",
            script="random_id.lua",
            env={"BENCH_MIN_ID": str(min_id), "BENCH_MAX_ID": str(max_id)},
            check=None,
        ),
        Scenario(
            "all thoughts",
            "thoughts",
            "/api/thoughts/",
            check=_page_of(page, lambda t: t["id"] in range(min_id, max_id + 1), "loaded ids")
            if len(ids) >= page
            else None,
        ),
        Scenario(
            "search rare word",
            "thoughts",
            f"/api/thoughts/?search={RARE_WORD}",
            check=_page_of(
                min(page, rare_hits), lambda t: RARE_WORD in t["text"].lower(), "matches"
            ),
        ),
        Scenario(
            "search common word",
            "thoughts",
            f"/api/thoughts/?search={COMMON_WORD}",
            check=_page_of(page, lambda t: COMMON_WORD in t["text"].lower(), "matches"),
        ),
        Scenario(
            "my thoughts",
            "thoughts",
            "/api/me/thoughts/",
            headers={"Authorization": f"Bearer {author_token}"},
            check=_page_of(page, lambda t: t["username"] == author, f"by {author}"),
        ),
        Scenario(
            "create thought",
            "thoughts",
            "/api/me/thoughts/",
            script="post_thought.lua",
            headers={"Authorization": f"Bearer {writer_token}"},
            expect=201,
            method="POST",
            body={"text": "A benchmark thought, checked before the load starts."},
            check=lambda r: None if r.json()["username"] == WRITER else "wrong author",
        ),
        Scenario(
            "login",
            "users",
            "/api/login/",
            script="login.lua",
            env={"BENCH_AUTHORS": str(authors), "BENCH_PASSWORD": PASSWORD},
            method="POST",
            body={"username": "user0001", "password": PASSWORD},
            # argon2id at its production cost takes a few hundred ms of CPU per login, by
            # design: at 32 connections requests would only queue for seconds. Four keep both
            # cores busy and measure the login itself.
            connections=4,
            check=lambda r: None if r.json()["Authorized"].startswith("Bearer ") else "no token",
        ),
        Scenario(
            "frontend home",
            "frontend",
            "/",
            headers={"Cookie": f"mt_session={author_token}"},
            check=lambda r: None if author in r.text and "<li" in r.text else "not a home page",
        ),
        Scenario(
            "frontend search",
            "frontend",
            f"/search?search={COMMON_WORD}",
            check=lambda r: None if r.text.lower().count(COMMON_WORD) >= page else "few matches",
        ),
    ]


class SanityCheckFailed(RuntimeError):
    """A scenario's checked request did not get the right answer: it is not measured."""


def sanity_check(url: str, scenario: Scenario) -> None:
    """One request by hand: the scenario must answer correctly before it is measured.

    A 503 with Retry-After ("busy, come back then") is tried once more after that wait, as a
    client told so would: right after a login run through the gateway, the checks of wrk's last
    requests still hold the places of the address this request comes from (bench/README.md,
    "Through the gateway"). A second refusal fails the check."""

    def send() -> httpx.Response:
        return httpx.request(
            scenario.method, url, headers=scenario.headers, json=scenario.body, timeout=30
        )

    response = send()
    if response.status_code == 503 and "Retry-After" in response.headers:
        wait = min(float(response.headers["Retry-After"]), 10.0)
        say(f"  {scenario.name:<20} check answered 503, Retry-After {wait:g} s: once more")
        time.sleep(wait)
        response = send()
    if response.status_code != scenario.expect:
        raise SanityCheckFailed(f"{scenario.name}: {url} answered {response.status_code}")
    problem = scenario.check(response) if scenario.check else None
    if problem:
        raise SanityCheckFailed(f"{scenario.name}: {url}: {problem}")


def open_loop_requests(scenario: Scenario) -> Callable[[int], Request]:
    """The scenario's request as bench/openloop.py sends it (what its Lua script does for wrk)."""
    headers = dict(scenario.headers)
    if scenario.script == "random_id.lua":
        low, high = int(scenario.env["BENCH_MIN_ID"]), int(scenario.env["BENCH_MAX_ID"])
        # A function of i alone: each generator process makes its own share of the requests
        # (a shared random state would give every process the same ids). Multiplying by a
        # large odd constant modulo the span spreads consecutive i over the whole id range.
        span = high - low + 1
        return lambda i: Request(
            "GET", f"/api/thoughts/{low + (i * 2_654_435_761) % span}/", headers
        )
    if scenario.body is not None:
        headers["Content-Type"] = "application/json"
        body = scenario.body

        def posted(i: int) -> Request:
            numbered = {**body, "text": f"Open-loop thought {i}: {body['text']}"}
            return Request(scenario.method, scenario.path, headers, json.dumps(numbered).encode())

        return posted
    return lambda i: Request(scenario.method, scenario.path, headers)


def run_open_loop_levels(
    base_url: str,
    scenario: Scenario,
    closed_loop_rps: float,
    meter: CpuMeter,
    databases: Databases,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """The scenario at each of --open-loop-loads times its closed-loop maximum, in this run;
    for posts, the rows added beside the 201s (every acknowledged post must be stored)."""
    make_request = open_loop_requests(scenario)
    posts = scenario.name == "create thought"
    rows = []
    for load in args.open_loop_loads:
        before = _writer_rows(databases) if posts else 0
        meter.start()
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            measured: OpenLoopResult = runner.run(
                run_open_loop(
                    base_url,
                    make_request,
                    rate=closed_loop_rps * load,
                    seconds=args.duration,
                    processes=args.generator_processes,
                    request_timeout=args.timeout,
                    warm_connections=32,  # as many as wrk's closed loop keeps open
                )
            )
        row = {"name": scenario.name, "load": load, **asdict(measured)}
        del row["samples"], row["gc_pauses"]
        if args.open_loop_samples:
            write_open_loop_samples(args.open_loop_samples, scenario.name, load, measured)
        # The services' CPU per request at this load; "wrk" here is the generator processes.
        row["cpu_us_per_request"] = meter.per_request(measured.requests)
        target = OPEN_LOOP_P99_TARGET_MS.get(scenario.name, OPEN_LOOP_P99_TARGET_DEFAULT_MS)
        row["p99_target_ms"] = target
        if posts:
            row["acknowledged_201"] = measured.statuses.get("201", 0)
            row["rows_added"] = _writer_rows(databases) - before
        rows.append(row)
        say(
            f"  {scenario.name:<20} open loop {load:.0%} = {measured.offered_rps:>6.0f} req/s "
            f"(sent {measured.achieved_rps:.0f}/s, ok {measured.ok_rps:.0f}/s)  "
            f"p50 {measured.p50_ms:.2f}  p99 {measured.p99_ms:.2f}  "
            f"p99.9 {measured.p999_ms:.2f} ms  send lag p99 {measured.send_lag_p99_ms:.2f} ms  "
            f"errors {measured.errors} {measured.statuses} (2xx p99 {measured.ok_p99_ms:.2f} ms)"
        )
    return rows


def write_open_loop_samples(folder: Path, name: str, load: float, measured: OpenLoopResult) -> None:
    """--open-loop-samples: one level's raw samples and generator pauses as JSON, times in
    seconds from the first schedule (bench/openloop_timeline.py reads them)."""
    folder.mkdir(parents=True, exist_ok=True)
    start = measured.samples[0].scheduled if measured.samples else 0.0
    path = folder / f"{name.replace(' ', '-')}-{round(load * 100)}.json"
    columns = ("scheduled", "sent", "done", "status", "process")
    data = {
        "name": name,
        "load": load,
        "offered_rps": measured.offered_rps,
        "start_monotonic": start,
        "columns": columns,
        "samples": [
            [
                round(s.scheduled - start, 6),
                round(s.sent - start, 6),
                round(s.done - start, 6),
                s.status,
                s.process,
            ]
            for s in measured.samples
        ],
        "gc_pauses": [
            [round(p.start - start, 6), round(p.seconds, 6), p.generation, p.process]
            for p in measured.gc_pauses
        ],
    }
    path.write_text(json.dumps(data))
    say(f"  raw samples: {path}")


def print_open_loop_table(rows: list[dict[str, Any]]) -> None:
    say("")
    say(
        "| scenario | load | offered req/s | sent req/s | 2xx req/s | p50 ms | p99 ms | p99.9 ms "
        "| send lag p99 ms | generator CPU us/req | generator GC pauses | 503 | other errors |"
    )
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        say(
            f"| {r['name']} | {r['load']:.0%} | {r['offered_rps']:,.0f} | {r['achieved_rps']:,.0f} "
            f"| {r['ok_rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} "
            f"| {r['send_lag_p99_ms']:.2f} | {r['generator_cpu_us']:.0f} "
            f"| {r['generator_gc_pauses']} "
            f"| {r['statuses'].get('503', 0)} | {r['errors'] - r['statuses'].get('503', 0)} |"
        )


# The run ---------------------------------------------------------------------------------------


def login(users_url: str, username: str) -> str:
    response = httpx.post(
        f"{users_url}/api/login/", json={"username": username, "password": PASSWORD}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["Authorized"]).removeprefix("Bearer ")


def load_data(databases: Databases, args: argparse.Namespace) -> float:
    """`python -m devtools load`, the project's own loader; its wall time in seconds."""
    argv = [
        sys.executable,
        "-m",
        "devtools",
        "load",
        "--thoughts",
        str(args.thoughts),
        "--authors",
        str(args.authors),
        "--password",
        PASSWORD,
        "--thoughts-database-url",
        databases.url("thoughts"),
        "--users-database-url",
        databases.url("users"),
    ]
    start = time.perf_counter()
    subprocess.run(argv, check=True, cwd=ROOT)
    return time.perf_counter() - start


def print_table(results: list[Result], memory: dict[str, list[dict[str, float]]]) -> None:
    header = (
        f"{'scenario':<20} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'of healthz':>10}"
    )
    say(header)
    say("-" * len(header))
    for r in results:
        say(
            f"{r.name:<20} {r.rps:>8.0f} {r.p50_ms:>8.2f} {r.p90_ms:>8.2f} {r.p99_ms:>8.2f} "
            f"{r.errors:>7} {r.ceiling_ratio:>10.2f}"
        )
    say("")
    groups = list(dict.fromkeys(g for r in results for g in r.cpu_us_per_request))
    header = f"{'CPU us per request':<20} " + " ".join(f"{g:>9}" for g in groups) + f" {'total':>9}"
    say(header)
    say("-" * len(header))
    for r in results:
        cpu = r.cpu_us_per_request
        say(
            f"{r.name:<20} "
            + " ".join(f"{cpu.get(g, 0):>9.0f}" for g in groups)
            + f" {sum(cpu.values()):>9.0f}"
        )
    say("")
    for name, workers in memory.items():
        figures = ", ".join(f"{w['rss_mb']:.0f} MB (peak {w['peak_rss_mb']:.0f})" for w in workers)
        say(f"RSS of {name} workers: {figures}")


def evaluate_targets(
    results: list[Result], memory: dict[str, list[dict[str, float]]]
) -> list[dict[str, Any]]:
    by_name = {r.name: asdict(r) for r in results}
    verdicts = []
    for target in TARGETS:
        if target.scenario in by_name:
            figure = by_name[target.scenario]
            verdicts.append(
                {
                    "scenario": target.scenario,
                    "target": target.text,
                    "met": bool(target.check(figure)),
                    "p99_ms": figure["p99_ms"],
                    "ceiling_ratio": figure["ceiling_ratio"],
                }
            )
    errors = sum(r.errors for r in results)
    verdicts.append(
        {"scenario": "all", "target": "no errors, no timeouts, no non-2xx", "met": errors == 0}
    )
    worst = max((w["rss_mb"] for ws in memory.values() for w in ws), default=0.0)
    verdicts.append(
        {
            "scenario": "all",
            "target": f"RSS per worker < {RSS_LIMIT_MB} MB after the run",
            "met": worst < RSS_LIMIT_MB,
            "worst_rss_mb": round(worst, 1),
        }
    )
    return verdicts


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return result.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def add_data_arguments(parser: argparse.ArgumentParser, default_db: str) -> None:
    """The options that say which data a benchmark runs on (what prepare_data reads)."""
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default=default_db)
    parser.add_argument("--thoughts", type=int, default=1_000_000, help="data size")
    parser.add_argument("--authors", type=int, default=1000)
    parser.add_argument("--work-dir", type=Path, help="default: var/bench/<db>")
    parser.add_argument("--fresh", action="store_true", help="start from empty databases")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, "sqlite")
    parser.add_argument("--workers", type=int, default=2, help="WORKERS of every service")
    parser.add_argument("--connections", type=int, default=32, help="wrk concurrency")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per scenario")
    parser.add_argument(
        "--timeout", type=int, default=10, help="wrk's per-request timeout (a timeout is an error)"
    )
    parser.add_argument("--only", action="append", help="run only these scenarios (repeatable)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra setting for every service (e.g. LOG_LEVEL=WARNING), to measure a change",
    )
    parser.add_argument(
        "--open-loop",
        action="store_true",
        help="also run " + ", ".join(OPEN_LOOP_SCENARIOS) + " at fixed arrival rates, "
        "fractions of their measured maximum (bench/openloop.py), --duration seconds each",
    )
    parser.add_argument(
        "--open-loop-loads",
        type=open_loop_loads,
        default=OPEN_LOOP_LOADS,
        metavar="F,F,...",
        help="the fractions of each scenario's measured maximum (default: %(default)s)",
    )
    parser.add_argument(
        "--generator-processes",
        type=int,
        default=2,
        help="open-loop generator processes, each sending its share of the schedule on its own "
        "connections (one process falls behind above ~1,500 req/s)",
    )
    parser.add_argument(
        "--open-loop-samples",
        type=Path,
        metavar="FOLDER",
        help="write every open-loop level's raw samples there (bench/openloop_timeline.py)",
    )
    parser.add_argument(
        "--stall-watch",
        action="store_true",
        help="with --open-loop-samples: the services log their GC pauses and event-loop lags "
        "there too (bench/stallwatch/sitecustomize.py; costs them a little CPU)",
    )
    parser.add_argument(
        "--check-targets", action="store_true", help="exit 1 when a target is missed, too"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="keep the harness honest in CI: SQLite, 5,000 thoughts, 2 s per scenario",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.db = "sqlite"
        args.thoughts = 5000
        args.duration = 2
        args.warmup = 0
        args.connections = 16
        args.open_loop_loads = (0.5,)
    return args


@dataclass(frozen=True)
class DataFacts:
    """What the loaded data holds, read from the databases (the scenarios' inputs)."""

    thoughts: int
    min_id: int
    max_id: int
    author: str  # the most prolific author ("my thoughts")
    author_thoughts: int
    rare_hits: int
    users: int
    load_seconds: float


@dataclass
class Run:
    """What the scenarios measured."""

    results: list[Result] = field(default_factory=list)
    memory: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    created_check: dict[str, int] = field(default_factory=dict)
    open_loop: list[dict[str, Any]] = field(default_factory=list)  # --open-loop rows


def prepare_data(databases: Databases, args: argparse.Namespace) -> DataFacts:
    """Creates and loads the databases, removes what an interrupted run posted, reads the facts."""
    databases.create(args.fresh)
    load_seconds = load_data(databases, args)
    # Whatever an interrupted run posted goes first: the data is what the loader made.
    databases.remove_posted()
    thoughts_count, min_id, max_id = databases.query(
        "thoughts", "SELECT count(*), min(id), max(id) FROM thoughts"
    )[0]
    top = databases.query(
        "thoughts",
        "SELECT username, count(*) AS n FROM thoughts GROUP BY username ORDER BY n DESC LIMIT 1",
    )[0]
    rare_hits = databases.query(
        "thoughts", "SELECT count(*) FROM thoughts WHERE search_text LIKE ?", f"%{RARE_WORD}%"
    )[0][0]
    users_count = databases.query("users", "SELECT count(*) FROM users")[0][0]
    return DataFacts(
        thoughts_count,
        min_id,
        max_id,
        str(top[0]),
        int(top[1]),
        rare_hits,
        users_count,
        load_seconds,
    )


def _writer_rows(databases: Databases) -> int:
    rows = databases.query("thoughts", "SELECT count(*) FROM thoughts WHERE username = ?", WRITER)
    return int(rows[0][0])


def run_scenario(
    scenario: Scenario,
    url: str,
    meter: CpuMeter,
    databases: Databases,
    args: argparse.Namespace,
    work_dir: Path,
    run: Run,
) -> Result:
    """One scenario: checked once by Python, warmed up, measured by wrk with the CPU meter on;
    for "create thought", every acknowledged post must be a row (then the rows are removed)."""
    sanity_check(url, scenario)
    script = lua_script(scenario, work_dir)
    wrk = {
        "connections": scenario.connections or args.connections,
        "threads": args.threads,
        "timeout": args.timeout,
    }
    if args.warmup:
        run_wrk(url, scenario, script, seconds=args.warmup, **wrk)
        time.sleep(SETTLE_SECONDS)  # the warm-up's last requests are not the run's
    posts = scenario.name == "create thought"
    before = _writer_rows(databases) if posts else 0
    meter.start()
    result = run_wrk(url, scenario, script, seconds=args.duration, **wrk)
    result.cpu_us_per_request = meter.per_request(result.requests)
    if posts:
        after = _writer_rows(databases)
        acknowledged = result.statuses.get("201", 0)
        run.created_check = {
            "acknowledged_201": acknowledged,
            "rows_before": before,
            "rows_after": after,
            "rows_added": after - before,
        }
        if after - before < acknowledged:
            run.failures.append(
                f"create thought: {acknowledged} acknowledged but only {after - before} rows added"
            )
        databases.remove_posted()
    return result


def prepare_scenarios(
    users_url: str, facts: DataFacts, args: argparse.Namespace, admin_token: str | None = None
) -> list[Scenario]:
    """The scenarios asked for (--only, always with healthz), their accounts ready: the writer
    created through the users service's admin API (Bearer `admin_token` where it needs one)."""
    created = httpx.post(
        f"{users_url}/admin/users/",
        json={"username": WRITER, "password": PASSWORD},
        headers={"Authorization": f"Bearer {admin_token}"} if admin_token else {},
        timeout=30,
    )
    if created.status_code not in (201, 409):
        created.raise_for_status()
    return [
        scenario
        for scenario in scenarios(
            min_id=facts.min_id,
            max_id=facts.max_id,
            author=facts.author,
            author_token=login(users_url, facts.author),
            writer_token=login(users_url, WRITER),
            authors=args.authors,
            rare_hits=facts.rare_hits,
        )
        if not args.only or scenario.name in args.only or scenario.name == "healthz"
    ]


def run_scenarios(
    services: dict[str, Service],
    databases: Databases,
    facts: DataFacts,
    args: argparse.Namespace,
    work_dir: Path,
) -> Run:
    """Starts the services, runs every scenario asked for, measures memory, stops them."""
    run = Run()
    try:
        for service in services.values():
            service.launch()
        for service in services.values():
            # Minutes on a machine loaded by other tenants (start-up took over 90 s at load 40).
            service.wait_until("/readyz", timeout=300)
        say("bench: services ready: " + ", ".join(f"{s.name} {s.url}" for s in services.values()))

        meter = CpuMeter(process_groups(services, databases))
        for scenario in prepare_scenarios(services["users"].url, facts, args):
            url = services[scenario.service].url + scenario.path
            try:
                result = run_scenario(scenario, url, meter, databases, args, work_dir, run)
            except SanityCheckFailed as exc:
                # One scenario's wrong answer (a 503 of an overloaded machine, say) fails the
                # run, but the others are still measured and the results still written.
                run.failures.append(str(exc))
                say(f"  {scenario.name:<20} FAILED its check: {exc}")
                continue
            run.results.append(result)
            say(
                f"  {result.name:<20} {result.rps:>8.0f} req/s  p99 {result.p99_ms:>8.2f} ms  "
                f"errors {result.errors}"
            )
            if args.open_loop and scenario.name in OPEN_LOOP_SCENARIOS:
                run.open_loop += run_open_loop_levels(
                    services[scenario.service].url,
                    scenario,
                    result.rps,
                    meter,
                    databases,
                    args,
                )
                databases.remove_posted()
        time.sleep(SETTLE_SECONDS)  # memory after the run: once its last requests are done
        for service in services.values():
            run.memory[service.name] = [memory_of(pid) for pid in service.workers()]
    finally:
        for service in services.values():
            service.stop()
    settle(run)
    return run


def settle(run: Run) -> None:
    """Each result's fraction of the /healthz rate; every failed request a failure of the run."""
    ceiling = next((r.rps for r in run.results if r.name == "healthz"), 0.0)
    for r in run.results:
        r.ceiling_ratio = round(r.rps / ceiling, 3) if ceiling else 0.0
        if r.errors:
            run.failures.append(f"{r.name}: {r.errors} failed requests ({r.statuses})")
    for row in run.open_loop:
        # A 503 with Retry-After is how an overloaded service sheds load (slow-query turns,
        # POST_QUEUE_LIMIT): reported in the table, not a failure. Anything else is.
        failed = {k: v for k, v in row["statuses"].items() if k != "503" and not k.startswith("2")}
        if failed:
            run.failures.append(f"{row['name']} open loop {row['load']:.0%}: {row['statuses']}")
        if row.get("rows_added", 0) < row.get("acknowledged_201", 0):
            run.failures.append(
                f"create thought open loop {row['load']:.0%}: {row['acknowledged_201']} "
                f"acknowledged but only {row['rows_added']} rows added"
            )


def report(
    run: Run,
    verdicts: list[dict[str, Any]],
    facts: DataFacts,
    databases: Databases,
    args: argparse.Namespace,
    *,
    started: datetime,
    load_before: tuple[float, float, float],
    extra_env: dict[str, str],
) -> Path:
    """Prints the tables and the verdicts; writes the JSON results; their path."""
    say("")
    say(
        f"{args.db}, {facts.thoughts:,} thoughts, {args.workers} workers per service, "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {os.cpu_count()} cores"
    )
    print_table(run.results, run.memory)
    if run.open_loop:
        print_open_loop_table(run.open_loop)
    if run.created_check:
        say(
            "create thought: {acknowledged_201} acknowledged (201), {rows_added} rows added".format(
                **run.created_check
            )
        )
    say("")
    for verdict in verdicts:
        mark = "met" if verdict["met"] else "MISSED"
        say(f"  [{mark}] {verdict['scenario']}: {verdict['target']}")

    document = {
        "date": started.isoformat(timespec="seconds"),
        "database": args.db,
        "database_version": databases.version(),
        "quick": args.quick,
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "python": platform.python_version(),
        "packages": package_versions(),
        "wrk": wrk_version(),
        "commit": git_commit(),
        "settings": {
            "workers": args.workers,
            "connections": args.connections,
            "threads": args.threads,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "timeout_s": args.timeout,
            "extra_env": extra_env,
        },
        "data": {
            "thoughts": facts.thoughts,
            "users": facts.users,
            "authors": args.authors,
            "my_thoughts_author": facts.author,
            "my_thoughts_author_thoughts": facts.author_thoughts,
            "rare_word": RARE_WORD,
            "rare_word_hits": facts.rare_hits,
            "rare_every": RARE_EVERY,
            "common_word": COMMON_WORD,
            "load_seconds": round(facts.load_seconds, 1),
        },
        "scenarios": [asdict(r) for r in run.results],
        "open_loop": run.open_loop,
        "create_thought_check": run.created_check,
        "memory_mb": run.memory,
        "targets": verdicts,
        "failures": run.failures,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path: Path = args.results_dir / f"{stamp}-{args.db}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def open_loop_loads(text: str) -> tuple[float, ...]:
    """--open-loop-loads: fractions such as 0.5,0.8 (not percentages: 50 would offer 50 times
    the maximum)."""
    try:
        loads = tuple(float(item) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not all(0 < load <= 1.5 for load in loads):
        raise argparse.ArgumentTypeError(f"give fractions of the maximum in (0, 1.5]: {text!r}")
    return loads


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        say("bench: wrk is not installed (apt-get install wrk)")
        return 2
    work_dir = (args.work_dir or ROOT / "var" / "bench" / args.db).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    databases = Databases(args.db, work_dir)
    started = datetime.now(UTC)
    load_before = os.getloadavg()

    say(f"bench: {args.db}, {args.thoughts:,} thoughts, work folder {work_dir}")
    facts = prepare_data(databases, args)
    extra_env = dict(item.split("=", 1) for item in args.env)
    if args.stall_watch:
        if not args.open_loop_samples:
            say("bench: --stall-watch needs --open-loop-samples (where the logs go)")
            return 2
        args.open_loop_samples.mkdir(parents=True, exist_ok=True)
        extra_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(BENCH_DIR / "stallwatch"), os.environ.get("PYTHONPATH")])
        )
        extra_env["BENCH_STALL_LOG"] = str(args.open_loop_samples.resolve() / "stall")
    services = build_services(databases, work_dir, args.workers, extra_env)
    run = run_scenarios(services, databases, facts, args, work_dir)
    verdicts = evaluate_targets(run.results, run.memory)
    path = report(
        run,
        verdicts,
        facts,
        databases,
        args,
        started=started,
        load_before=load_before,
        extra_env=extra_env,
    )
    say(f"\nbench: results in {path}")
    if run.failures:
        say("bench: FAILED\n  " + "\n  ".join(run.failures))
        return 1
    if args.check_targets and not all(v["met"] for v in verdicts):
        say("bench: a target was missed")
        return 1
    return 0


if __name__ == "__main__":
    # SIGTERM (a test's timeout, `kill`) unwinds like Ctrl-C, so the services it started are
    # stopped by the same `finally` blocks instead of outliving the benchmark.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main())
