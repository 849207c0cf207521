"""The benchmark harness keeps working: `bench/run.py --quick` on small SQLite data.

Not a timed test: the quick mode runs every scenario for two seconds on 5,000 thoughts and
fails only when a request failed (socket error, timeout, non-2xx), when an acknowledged thought
is missing from the database, or when the harness itself breaks. The figures are not checked:
they mean nothing on a loaded CI machine. The real runs are `make bench DB=...` (bench/README.md).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import need

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "healthz",
    "thought by id",
    "all thoughts",
    "search rare word",
    "search common word",
    "my thoughts",
    "create thought",
    "login",
    "frontend home",
    "frontend search",
}


@pytest.mark.slow
def test_quick_benchmark_runs_every_scenario_without_a_failed_request(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        need("wrk is not installed (apt-get install wrk)")
    results = tmp_path / "results"
    # A session of its own, so that a run cut short by the timeout takes the services it started
    # with it (they are its children; killing bench/run.py alone would leave them serving).
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--open-loop",
            "--work-dir",
            str(tmp_path / "work"),
            "--results-dir",
            str(results),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the quick benchmark took over 420 s:\n{output[-4000:]}")
    assert process.returncode == 0, output[-4000:]

    (report_path,) = results.glob("*-sqlite-quick.json")
    report = json.loads(report_path.read_text())
    assert {scenario["name"] for scenario in report["scenarios"]} == SCENARIOS
    for scenario in report["scenarios"]:
        assert scenario["requests"] > 0, scenario
        assert scenario["non_2xx"] == scenario["socket_errors"] == scenario["timeouts"] == 0
    # --open-loop: each of its scenarios at 50 % of its measured maximum (--quick's load), sent
    # by two generator processes, none failed
    open_loop = {(row["name"], row["load"]) for row in report["open_loop"]}
    assert open_loop == {
        (name, load)
        for name in (
            "thought by id",
            "all thoughts",
            "search rare word",
            "my thoughts",
            "create thought",
            "frontend home",
            "frontend search",
        )
        for load in (0.5,)
    }
    for row in report["open_loop"]:
        assert row["requests"] > 0, row
        # Only a shed 503 (Retry-After: slow-query turns, POST_QUEUE_LIMIT) may answer an open
        # loop on a loaded machine: never a socket error, a timeout or another status.
        assert set(row["statuses"]) <= {"200", "201", "503"}, row
        assert row["processes"] == 2, row
        assert row["ok_rps"] > 0, row
        if row["name"] == "create thought":
            assert row["rows_added"] >= row["acknowledged_201"] > 0, row
    created = report["create_thought_check"]
    assert created["acknowledged_201"] > 0
    assert created["rows_added"] >= created["acknowledged_201"]
    assert report["data"]["thoughts"] >= 5000
    assert report["data"]["rare_word_hits"] > 0
    assert report["memory_mb"]["thoughts"], "no worker memory measured"
    assert report["machine"]["cores"] > 0
    assert report["python"]
    assert report["database_version"]
    # The table the README quotes is printed too.
    assert "of healthz" in output


def test_the_benchmarks_services_write_logs_as_production_does(tmp_path: Path) -> None:
    # A local run's stack and testkit's processes write every line at once; the benchmark
    # measures production's batches (until this test, it measured line-at-a-time writes).
    # The benchmark's modules import each other by name from bench/, as when run as scripts.
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        run = importlib.import_module("run")
    finally:
        sys.path.remove(str(ROOT / "bench"))
    services = run.build_services(run.Databases("sqlite", tmp_path), tmp_path, 2, {})
    assert {s.env["LOG_FLUSH_SECONDS"] for s in services.values()} == {"0.2"}
    asked = run.build_services(
        run.Databases("sqlite", tmp_path), tmp_path, 2, {"LOG_FLUSH_SECONDS": "0"}
    )
    assert {s.env["LOG_FLUSH_SECONDS"] for s in asked.values()} == {"0"}
