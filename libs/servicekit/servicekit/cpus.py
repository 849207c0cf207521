"""How many cores this process may really use.

`os.cpu_count()` is the machine's count: in a Kubernetes pod limited to one CPU on a 32-core node it
says 32, and sizing CPU-bound thread pools by it (one argon2 check per core, 19 MiB each) would run
32 checks against the pod's memory limit while the CPU quota serves one. The cgroup v2 quota
(`cpu.max`, what a pod's `resources.limits.cpu` and compose's `cpus:` set) and the process's CPU
affinity bound the answer too.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def quota_cores(cpu_max: str) -> int | None:
    """Cores allowed by a cgroup v2 `cpu.max` line ("<quota> <period>" or "max <period>")."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    # 1.5 CPUs can keep two threads busy part of the time: round up, never below one.
    return max(1, math.ceil(quota / period))


def available_cores(cpu_max_file: Path = CGROUP_CPU_MAX) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota = quota_cores(cpu_max_file.read_text())
    except OSError:  # no cgroup v2 here (another OS, or a v1 host): the affinity is the bound
        quota = None
    return min(cores, quota) if quota else cores
