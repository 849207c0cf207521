"""What the machine did while a benchmark ran, on the open-loop samples' clock (time.monotonic()).

    .venv/bin/python bench/machine_watch.py var/bench/samples/why/machine &
    ... the benchmark ...
    kill -INT <its pid>
    .venv/bin/python bench/machine_watch.py --report var/bench/samples/why/machine \
        var/bench/samples/why/thought-by-id-50.json

Records, into <prefix>.* (JSON lines, every time a `time.monotonic()`):

- `.stat`: every 10 ms, each CPU's counters from /proc/stat (user, nice, system, idle, iowait,
  irq, softirq, steal, in jiffies of 10 ms), the context switches, the run queue
  (procs_running) and the CPU pressure (/proc/pressure/cpu "some" total, µs);
- `.hiccup.<cpu>`: one process per CPU, pinned to it at SCHED_FIFO priority 50 (above every
  normal task of the guest), sleeps 2 ms at a time and writes every wake-up more than 2 ms late.
  A real-time task that wakes late was not kept off its CPU by the guest's scheduler: the
  virtual CPU itself did not run (the hypervisor), or the kernel ran with interrupts off;
- `.procs`: every 250 ms, each process's CPU time (utime + stime) that grew by 5 ms or more,
  with its command (pidstat's view, on the same clock).

--report prints, for each episode of slow requests in the given samples files (as
bench/openloop_timeline.py finds them) and for a window around it, what these recorded there.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openloop_timeline import episodes

FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def read_stat() -> dict[str, Any]:
    cpus: dict[str, list[int]] = {}
    record: dict[str, Any] = {}
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0].startswith("cpu") and parts[0] != "cpu":
                cpus[parts[0][3:]] = [int(x) for x in parts[1:9]]
            elif parts[0] == "ctxt":
                record["ctxt"] = int(parts[1])
            elif parts[0] == "procs_running":
                record["running"] = int(parts[1])
    record["cpus"] = cpus
    try:
        with open("/proc/pressure/cpu") as f:
            record["psi_some_us"] = int(f.readline().split("total=")[1])
    except OSError:
        pass
    return record


def stat_loop(prefix: str) -> None:
    with open(f"{prefix}.stat", "w", buffering=1 << 16) as out:
        while True:
            now = time.monotonic()
            record = read_stat()
            record["t"] = now
            out.write(json.dumps(record) + "\n")
            time.sleep(max(0.0, now + 0.01 - time.monotonic()))


def hiccup_loop(prefix: str, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
        policy = "fifo50"
    except PermissionError:
        policy = "normal"
    with open(f"{prefix}.hiccup.{cpu}", "w", buffering=1) as out:
        out.write(json.dumps({"cpu": cpu, "policy": policy}) + "\n")
        while True:
            before = time.monotonic()
            time.sleep(0.002)
            after = time.monotonic()
            late = after - before - 0.002
            if late > 0.002:
                out.write(json.dumps({"t": before, "late_ms": late * 1000}) + "\n")


def proc_times() -> dict[int, tuple[float, str]]:
    found = {}
    tick = os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                text = f.read()
        except OSError:
            continue
        command = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        found[int(name)] = ((int(fields[11]) + int(fields[12])) / tick, command)
    return found


def procs_loop(prefix: str) -> None:
    previous = proc_times()
    with open(f"{prefix}.procs", "w", buffering=1 << 16) as out:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            current = proc_times()
            grown = {
                f"{command}/{pid}": cpu - previous.get(pid, (0.0, ""))[0]
                for pid, (cpu, command) in current.items()
            }
            busy = {name: round(s * 1000) for name, s in grown.items() if s >= 0.005}
            out.write(json.dumps({"t": now, "busy_ms": busy}) + "\n")
            previous = current


def record(prefix: str) -> None:
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    children = []
    jobs: list[Callable[[], None]] = [lambda: stat_loop(prefix), lambda: procs_loop(prefix)]
    jobs += [functools.partial(hiccup_loop, prefix, cpu) for cpu in sorted(os.sched_getaffinity(0))]
    for job in jobs:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # closes (flushes) the file
            try:
                job()
            finally:
                os._exit(0)
        children.append(pid)
    with open(f"{prefix}.clock", "w") as out:
        out.write(json.dumps({"monotonic": time.monotonic(), "wall": time.time()}) + "\n")

    def stop(*_: object) -> None:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while True:
        signal.pause()


def load_lines(path: str) -> list[dict[str, Any]]:
    lines = []
    for line in Path(path).read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            break  # the last line of a killed writer
    return lines


def steal_jiffies(first: dict[str, Any], last: dict[str, Any]) -> list[tuple[int, int]]:
    """Each CPU's steal counter (jiffies of 10 ms) in two /proc/stat records."""
    return [(first["cpus"][cpu][7], counters[7]) for cpu, counters in last["cpus"].items()]


def report(prefix: str, files: list[Path], slow_ms: float, margin: float) -> None:
    stats = load_lines(f"{prefix}.stat")
    procs = load_lines(f"{prefix}.procs")
    hiccups = []
    for path in sorted(Path(prefix).parent.glob(Path(prefix).name + ".hiccup.*")):
        lines = load_lines(str(path))
        cpu = lines[0]["cpu"]
        hiccups += [(h["t"], cpu, h["late_ms"]) for h in lines[1:]]
    hiccups.sort()
    clock = load_lines(f"{prefix}.clock")[0]

    def wall(t: float) -> str:
        at = t - clock["monotonic"] + clock["wall"]
        return time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}"

    def window(t0: float, t1: float) -> None:
        part = [s for s in stats if t0 <= s["t"] <= t1]
        for a, b in itertools.pairwise(part):
            cells = []
            for cpu, now in b["cpus"].items():
                d = [x - y for x, y in zip(now, a["cpus"][cpu], strict=True)]
                busy = sum(d) - d[3] - d[4]
                cells.append(f"cpu{cpu} busy {busy} idle {d[3]} st {d[7]}")
            psi = (b.get("psi_some_us", 0) - a.get("psi_some_us", 0)) / 1000
            print(
                f"    {wall(b['t'])} +{(b['t'] - a['t']) * 1000:4.0f}ms "
                + " | ".join(cells)
                + f" | cs {b['ctxt'] - a['ctxt']:5d} run {b['running']:2d} psi {psi:5.1f}ms"
            )
        for h in hiccups:
            if t0 <= h[0] <= t1:
                print(f"    hiccup {wall(h[0])} cpu{h[1]} woke {h[2]:.1f} ms late")
        for p in procs:
            if t0 <= p["t"] <= t1 + 0.25:
                top = sorted(p["busy_ms"].items(), key=lambda kv: -kv[1])[:8]
                print(f"    procs {wall(p['t'])} " + ", ".join(f"{k} {v}" for k, v in top))

    total_steal = [(last - first) * 10 for first, last in steal_jiffies(stats[0], stats[-1])]
    print(
        f"recorded {wall(stats[0]['t'])}-{wall(stats[-1]['t'])}: steal per CPU {total_steal} ms; "
        f"{len(hiccups)} real-time wake-ups > 2 ms late, "
        f"{sum(1 for h in hiccups if h[2] > 10)} > 10 ms, longest "
        f"{max((h[2] for h in hiccups), default=0):.1f} ms"
    )
    for path in files:
        data = json.loads(path.read_text())
        origin = data["start_monotonic"]
        rows = sorted(data["samples"])
        level_end = origin + (rows[-1][0] if rows else 0)
        inside = [h for h in hiccups if origin <= h[0] <= level_end]
        print(
            f"\n{data['name']} at {data['load']:.0%} ({wall(origin)}-{wall(level_end)}): "
            f"{len(inside)} hiccups in the level, "
            + ", ".join(f"{wall(h[0])} cpu{h[1]} {h[2]:.0f}ms" for h in inside if h[2] > 5)
        )
        for e in episodes(rows, slow_ms, gap=0.05):
            print(
                f"  episode {wall(origin + e['first'])}-{wall(origin + e['last'])}: "
                f"{e['count']} slow, max {e['max_ms']:.1f} ms"
            )
            if e["max_ms"] >= 40:
                window(origin + e["first"] - margin, origin + e["last"] + e["max_ms"] / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefix")
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--slow", type=float, default=20.0)
    parser.add_argument("--margin", type=float, default=0.1, help="seconds before an episode")
    args = parser.parse_args()
    if args.report:
        report(args.prefix, args.files, args.slow, args.margin)
    else:
        record(args.prefix)


if __name__ == "__main__":
    main()
