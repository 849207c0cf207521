"""Where in time an open-loop level's slow requests lie: start of the level, periodic, random.

    .venv/bin/python bench/run.py ... --open-loop --open-loop-samples var/bench/samples
    .venv/bin/python bench/openloop_timeline.py var/bench/samples/thought-by-id-50.json

Reads the raw samples that `bench/run.py --open-loop-samples` writes (times in seconds from the
level's first schedule) and prints, per bin of --bin seconds, how many requests were due, the
send lag (how late the generator sent them) and the latency (from the schedule) at p50, p99 and
max, how many exceeded --slow ms, and the generator's garbage-collection pauses that began in the
bin; then the episodes: runs of consecutive due requests slower than --slow, with their span,
their count and the send lag inside them. With --stalls (the logs of `bench/run.py
--stall-watch`, bench/stallwatch/sitecustomize.py), each bin also lists the services' garbage-
collection pauses and event-loop lags that began in it, by process ("thoughts/1234: gc2 12ms
cpu 11"; "lag 40ms cpu 2" is a loop that waited 40 ms while its thread ran 2 ms: blocked or
without a core, where "cpu 38" would be busy computing).
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path
from typing import Any

from openloop import percentile


def episodes(rows: list[list[float]], slow_ms: float, gap: float) -> list[dict[str, Any]]:
    """Runs of slow requests (by schedule) whose neighbours are less than `gap` s apart."""
    slow = [r for r in rows if (r[2] - min(r[0], r[1])) * 1000 > slow_ms]
    found: list[dict[str, Any]] = []
    for row in slow:
        if found and row[0] - found[-1]["last"] < gap:
            episode = found[-1]
        else:
            episode = {"first": row[0], "last": row[0], "count": 0, "max_ms": 0.0, "lag": []}
            found.append(episode)
        episode["last"] = row[0]
        episode["count"] += 1
        episode["max_ms"] = max(episode["max_ms"], (row[2] - min(row[0], row[1])) * 1000)
        episode["lag"].append((row[1] - row[0]) * 1000)
    return found


def stall_events(prefix: str) -> list[tuple[float, str]]:
    """(time.monotonic(), "service/pid: what") of every stall log <prefix>.<pid>."""
    logs = {}
    for path in glob.glob(f"{glob.escape(prefix)}.*"):
        lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
        if lines:
            logs[lines[0]["pid"]] = lines
    names = {}
    for pid, lines in logs.items():
        command, parent = lines[0]["cmd"], logs.get(lines[0]["ppid"])
        if " -m " in command:  # a service's main process
            names[pid] = command.split(" -m ")[1].split()[0].removesuffix("_service") + "-main"
        elif "spawn_main" in command and parent and " -m " in parent[0]["cmd"]:
            service = parent[0]["cmd"].split(" -m ")[1].split()[0].removesuffix("_service")
            names[pid] = f"{service}/{pid}"
    events = []
    for pid, lines in logs.items():
        for record in lines[1:]:
            if pid not in names:
                continue
            if "gc" in record:
                what = f"gc{record['generation']} {record['ms']:.0f}ms cpu {record['cpu_ms']:.0f}"
                events.append((record["gc"], f"{names[pid]}: {what}"))
            elif "lag" in record:
                what = f"lag {record['ms']:.0f}ms cpu {record['main_cpu_ms']:.0f}"
                events.append((record["lag"], f"{names[pid]}: {what}"))
    return sorted(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--bin", type=float, default=0.5, help="seconds per line")
    parser.add_argument("--slow", type=float, default=20.0, help="ms: a slow request")
    parser.add_argument("--stalls", help="the stall logs' prefix (bench/run.py --stall-watch)")
    args = parser.parse_args()
    stalls = stall_events(args.stalls) if args.stalls else []
    for path in args.files:
        data = json.loads(path.read_text())
        rows = sorted(data["samples"])
        pauses = data.get("gc_pauses", [])
        origin = data.get("start_monotonic", 0.0)  # the stall logs' times are monotonic
        latencies = [(r[2] - min(r[0], r[1])) * 1000 for r in rows]
        lags = [(r[1] - r[0]) * 1000 for r in rows]
        print(
            f"{data['name']} at {data['load']:.0%}: {len(rows)} requests at "
            f"{data['offered_rps']:.0f}/s; p50 {percentile(latencies, 0.5):.2f}, "
            f"p99 {percentile(latencies, 0.99):.2f}, max {max(latencies, default=0):.2f} ms; "
            f"send lag p99 {percentile(lags, 0.99):.2f} ms; "
            f"generator GC pauses {len(pauses)}, longest "
            f"{max((p[1] for p in pauses), default=0) * 1000:.2f} ms"
        )
        print(
            "   from s   due  lag p50  lag p99  lag max   p50 ms   p99 ms   max ms  slow  "
            "gen GC (ms, generation)"
        )
        end = rows[-1][0] if rows else 0.0
        t = 0.0
        while t <= end:
            part = [r for r in rows if t <= r[0] < t + args.bin]
            lat = [(r[2] - min(r[0], r[1])) * 1000 for r in part]
            lag = [(r[1] - r[0]) * 1000 for r in part]
            gcs = [p for p in pauses if t <= p[0] < t + args.bin and p[1] >= 0.001]
            services = [what for at, what in stalls if t <= at - origin < t + args.bin]
            print(
                f"{t:9.2f} {len(part):5d} {percentile(lag, 0.5):8.2f} {percentile(lag, 0.99):8.2f}"
                f" {max(lag, default=0):8.2f} {percentile(lat, 0.5):8.2f} "
                f"{percentile(lat, 0.99):8.2f} {max(lat, default=0):8.2f} "
                f"{sum(1 for x in lat if x > args.slow):5d}  "
                + " ".join(f"{p[1] * 1000:.1f}({p[2]})" for p in gcs)
                + ("; ".join(services) if services else "")
            )
            t += args.bin
        found = episodes(rows, args.slow, gap=0.05)
        print(f"episodes of requests slower than {args.slow:g} ms (gaps under 50 ms joined):")
        for e in found:
            print(
                f"  {e['first']:7.3f}-{e['last']:7.3f} s  {e['count']:5d} slow, max "
                f"{e['max_ms']:8.2f} ms, their send lag p50 {percentile(e['lag'], 0.5):7.2f} "
                f"max {max(e['lag']):7.2f} ms"
            )
        print()


if __name__ == "__main__":
    main()
