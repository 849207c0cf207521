"""bench/stallwatch/sitecustomize.py (bench/run.py --stall-watch) sees what stalls a process.

A Python process started as bench/run.py starts the services with --stall-watch blocks its
uvloop event loop for 200 ms once and makes a full garbage collection of a large heap: its log
must show the lag, with the main thread's CPU time (next to none: blocked, not computing) and
its stack at the blocking call, and the collection; without BENCH_STALL_LOG, nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = """
import asyncio, gc, time, uvloop

async def main():
    await asyncio.sleep(0.1)
    time.sleep(0.2)  # a blocking call on the loop: no CPU, no answer to the ping
    await asyncio.sleep(0.1)
    heap = [[i] for i in range(500_000)]
    gc.collect()
    await asyncio.sleep(0.1)

uvloop.run(main())
"""


def run(tmp_path: Path, log: bool) -> list[dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench" / "stallwatch")}
    env.pop("BENCH_STALL_LOG", None)
    if log:
        env["BENCH_STALL_LOG"] = str(tmp_path / "stall")
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    completed = subprocess.run(
        [sys.executable, str(program)], env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    records = []
    for path in sorted(tmp_path.glob("stall.*")):
        records += [json.loads(line) for line in path.read_text().splitlines()]
    return records


def test_a_blocked_loop_and_a_collection_are_logged(tmp_path: Path) -> None:
    records = run(tmp_path, log=True)

    assert str(records[0]["cmd"]).startswith(sys.executable)
    lags = [r for r in records if "lag" in r]
    # the sleep: a long lag while the main thread hardly ran, its stack at the sleep
    blocked = [
        r
        for r in lags
        if _ms(r, "ms") >= 150
        and _ms(r, "main_cpu_ms") < 50
        and "time.sleep(0.2)" in str(r["stack"])
    ]
    assert blocked, lags
    full = [r for r in records if "gc" in r and r["generation"] == 2]
    assert full, records
    assert max(_ms(r, "cpu_ms") for r in full) > 2


def _ms(record: dict[str, object], key: str) -> float:
    value = record[key]
    assert isinstance(value, float | int)
    return float(value)


def test_nothing_is_logged_without_the_setting(tmp_path: Path) -> None:
    assert run(tmp_path, log=False) == []
