import os
import subprocess
import sys
from pathlib import Path

import pytest

from servicekit.cpus import available_cores, quota_cores


@pytest.mark.parametrize(
    ("line", "cores"),
    [
        ("100000 100000\n", 1),  # limits.cpu: 1
        ("150000 100000\n", 2),  # 1.5 CPUs keep two threads partly busy
        ("50000 100000\n", 1),  # half a CPU is still one thread
        ("400000 100000\n", 4),
        ("max 100000\n", None),  # no limit
        ("garbage\n", None),
        ("0 100000\n", None),
    ],
)
def test_quota_cores_reads_cgroup_cpu_max(line: str, cores: int | None) -> None:
    assert quota_cores(line) == cores


def test_a_cpu_quota_below_the_machine_bounds_the_cores(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    assert available_cores(cpu_max) == 1


def test_no_cgroup_file_means_the_affinity_decides(tmp_path: Path) -> None:
    assert available_cores(tmp_path / "missing") == len(os.sched_getaffinity(0))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to pin to one")
def test_a_process_pinned_to_one_core_sees_one() -> None:
    # A real process with a real affinity mask (what `taskset` or a cpuset gives a container).
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from pathlib import Path; from servicekit.cpus import available_cores;"
        "print(available_cores(Path('/nonexistent')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
