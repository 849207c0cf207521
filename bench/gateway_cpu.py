"""HAProxy's own CPU per request with deploy/gateway/haproxy.cfg and variants of it, in front of
a backend that costs nothing (a second HAProxy answering 200 itself): what the gateway's
configuration costs, apart from the services and from whatever else the machine runs.

    .venv/bin/python bench/gateway_cpu.py --rounds 4

Each variant runs in turn, alternated over --rounds: the gateway started from the variant's
file with the environment compose gives it (every backend at the trivial server), its log on
a pipe that `cat` empties (as Docker reads a container's stdout), then wrk through bench/run.py
(`/healthz`, the frontend route, 32 connections, 1 thread, --duration seconds). CPU per request
is the gateway's processes' (master and worker, /proc) over wrk's count; the median over the
rounds is printed. Needs haproxy and wrk on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from run import ROOT, Scenario, cpu_seconds, lua_script, run_wrk, say

from testkit import free_port

CONFIG = ROOT / "deploy" / "gateway" / "haproxy.cfg"
ROUTES = ("USERS", "THOUGHTS", "TASKS", "FRONTEND")


def _edit(old: str, new: str) -> Callable[[str], str]:
    def apply(config: str) -> str:
        if old not in config:
            raise ValueError(f"the gateway's configuration no longer has {old!r}")
        return config.replace(old, new, 1)

    return apply


VARIANTS: dict[str, Callable[[str], str]] = {
    "as committed": lambda config: config,
    "every request logged": _edit("    option dontlog-normal\n", ""),
    "2 threads": _edit('nbthread "${GATEWAY_THREADS-1}"', "nbthread 2"),
    "http-server-close": _edit(
        "    option httplog\n", "    option httplog\n    option http-server-close\n"
    ),
}


def backend_config(port: int) -> str:
    return f"""global
    nbthread 1
defaults
    mode http
    timeout client 30s
    timeout server 30s
    timeout connect 2s
frontend trivial
    bind 127.0.0.1:{port}
    http-request return status 200 content-type application/json string "{{}}"
"""


def gateway_processes(pid: int) -> list[int]:
    """The master (-W) and its worker."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def measure(variant: str, config: str, backend: str, work_dir: Path, seconds: int) -> float:
    path = work_dir / "gateway.cfg"
    path.write_text(VARIANTS[variant](config))
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_BIND": f"127.0.0.1:{port}",
        "STATS_BIND": f"127.0.0.1:{free_port()}",
        "RUNTIME_SOCKET": str(work_dir / "runtime.sock"),
        "RUNTIME_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    for route in ROUTES:
        env[f"{route}_1"] = env[f"{route}_2"] = backend
        env[f"{route}_LEGACY_1"] = f"127.0.0.1:{free_port()}"  # nothing there: disabled anyway
    log = (work_dir / "gateway.log").open("ab")  # its own messages; the access log is stdout
    gateway = subprocess.Popen(
        ["haproxy", "-W", "-db", "-f", str(path)], env=env, stdout=subprocess.PIPE, stderr=log
    )
    sink = subprocess.Popen(["cat"], stdin=gateway.stdout, stdout=subprocess.DEVNULL)
    try:
        time.sleep(2)  # the first health checks have passed (inter 1s, rise 2)
        scenario = Scenario("healthz", "frontend", "/healthz")
        script = lua_script(scenario, work_dir)
        pids = gateway_processes(gateway.pid)
        before = sum(cpu_seconds(pid) for pid in pids)
        result = run_wrk(
            f"http://127.0.0.1:{port}/healthz",
            scenario,
            script,
            seconds=seconds,
            connections=32,
            threads=1,
            timeout=10,
        )
        used = sum(cpu_seconds(pid) for pid in pids) - before
    finally:
        gateway.terminate()
        gateway.wait()
        sink.wait()
        log.close()
    if result.errors:
        raise RuntimeError(f"{variant}: {result.errors} failed requests ({result.statuses})")
    us = used * 1e6 / result.requests
    load = os.getloadavg()[0]
    say(f"  {variant:<22} {result.rps:>8.0f} req/s  {us:6.1f} us/request  load {load:.1f}")
    return us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS))
    args = parser.parse_args(argv)
    work_dir = ROOT / "var" / "bench" / "gateway-cpu"
    work_dir.mkdir(parents=True, exist_ok=True)
    config = CONFIG.read_text()
    backend = f"127.0.0.1:{free_port()}"
    (work_dir / "backend.cfg").write_text(backend_config(int(backend.rpartition(":")[2])))
    trivial = subprocess.Popen(["haproxy", "-db", "-f", str(work_dir / "backend.cfg")])
    variants = args.variant or list(VARIANTS)
    figures: dict[str, list[float]] = {v: [] for v in variants}
    try:
        time.sleep(0.5)
        for _ in range(args.rounds):
            for variant in variants:
                figures[variant].append(measure(variant, config, backend, work_dir, args.duration))
    finally:
        trivial.terminate()
        trivial.wait()
    say("")
    for variant, values in figures.items():
        rounded = ", ".join(f"{v:.1f}" for v in values)
        say(f"{variant:<22} median {statistics.median(values):6.1f} us/request  ({rounded})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
