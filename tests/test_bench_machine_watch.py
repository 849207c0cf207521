"""bench/machine_watch.py records the machine on the open-loop samples' clock and reports it
beside their slow episodes.

Records for about a second (the per-CPU counters every 10 ms, the processes' CPU every 250 ms,
a real-time wake-up probe per CPU), while a child burns CPU; then a samples file made here, with
one episode of slow requests inside the recorded window, is reported: the episode, the CPU
counters around it and the busy child must be named.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "machine_watch.py"
BURN = "import time\nend = time.monotonic() + 0.8\nwhile time.monotonic() < end: pass\n"


def test_records_and_reports_an_episode_on_the_samples_clock(tmp_path: Path) -> None:
    prefix = tmp_path / "machine"
    recorder = subprocess.Popen([sys.executable, str(SCRIPT), str(prefix)])
    try:
        time.sleep(0.3)
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", BURN], check=True)
        time.sleep(0.3)
    finally:
        recorder.send_signal(signal.SIGINT)
        assert recorder.wait(timeout=10) == 0

    stats = [json.loads(line) for line in (prefix.parent / "machine.stat").read_text().splitlines()]
    assert len(stats) >= 50  # every 10 ms for ~1.4 s
    assert all(s["cpus"] and "ctxt" in s and "running" in s for s in stats)
    assert all(len(cpu) == 8 for cpu in stats[0]["cpus"].values())
    assert [s["t"] for s in stats] == sorted(s["t"] for s in stats)
    procs_text = (prefix.parent / "machine.procs").read_text()
    procs = [json.loads(line) for line in procs_text.splitlines()]
    assert any(any(name.startswith("python") for name in p["busy_ms"]) for p in procs)
    probes = sorted(prefix.parent.glob("machine.hiccup.*"))
    assert probes
    assert all("policy" in json.loads(p.read_text().splitlines()[0]) for p in probes)

    # 0.2 s of requests every ms, the middle 50 slow (45 ms), from `start` on.
    samples = []
    for i in range(200):
        scheduled = i / 1000
        latency = 0.045 if 100 <= i < 150 else 0.001
        samples.append([scheduled, scheduled, scheduled + latency, 200, 0])
    level = tmp_path / "level.json"
    level.write_text(
        json.dumps(
            {
                "name": "thought by id",
                "load": 0.5,
                "start_monotonic": start,
                "samples": samples,
                "gc_pauses": [],
            }
        )
    )
    report = subprocess.run(
        [sys.executable, str(SCRIPT), "--report", "--margin", "0.5", str(prefix), str(level)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "steal per CPU" in report
    assert "thought by id at 50%" in report
    assert "episode" in report
    assert "50 slow, max 45.0 ms" in report
    assert "cpu0 busy" in report  # the counters around the episode
    assert "procs " in report
