"""How many threads biosig computes with, and how its waiting threads behave.

torch's CPU default is one OpenMP thread per core of the machine, each spinning for a while
when it waits at a barrier. On a shared machine that is the worst choice: a team of threads
is as slow as its slowest member, and a member whose core is taken by another job holds the
whole team up while the others burn their share spinning. ``docs/benchmarks.md`` ("Threads
on a busy machine") measured a small training 2.4 to 3 times slower beside four busy
processes than one thread, or a short spin, made it.

So, unless the user chose (``--threads`` or ``OMP_NUM_THREADS``), biosig uses one thread
per core it may use (CPU affinity and a container's CPU quota) that no other process is
using at the start, and a short spin (``GOMP_SPINCOUNT``) before a waiting thread sleeps.
A passive wait (``OMP_WAIT_POLICY=PASSIVE``) was measured too and rejected: 18 % slower on
an idle machine, where the short spin costs nothing measurable.

Everything here is torch-free: it must run before torch is imported, since OpenMP reads
its settings once, when torch loads it.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: Spins before a waiting OpenMP thread sleeps (libgomp's default is 300 000 for a team no
#: larger than the cores, and 1 000 when oversubscribed; ~10 000 spins are a few µs).
SPIN_COUNT = "10000"
#: Samples of the run queue taken to see whether other processes are busy, and the pause
#: between them (the least is used, so a blip does not count).
RUN_QUEUE_SAMPLES, RUN_QUEUE_PAUSE_S = 5, 0.01
#: Where a container's CPU quota lives: cgroup v2, then v1 (quota and period files).
CGROUP_V2_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = Path("/sys/fs/cgroup/cpu")


@dataclass(frozen=True)
class ThreadPolicy:
    """The intra-op threads chosen, and why (``"--threads"``, ``"OMP_NUM_THREADS"``, or the
    free cores: ``usable`` cores of which ``busy`` were taken by other processes)."""

    threads: int
    reason: str
    usable: int
    busy: int = 0


def cpu_quota(v2_max: Path = CGROUP_V2_MAX, v1: Path = CGROUP_V1) -> float | None:
    """The CPUs a container's quota allows (``2.5`` for 250 ms per 100 ms), or None when
    there is no quota or it cannot be read."""
    try:
        if v2_max.exists():
            quota, period = v2_max.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
        period_us = int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), capped by the container's CPU
    quota rounded up: a quota of 1.5 CPUs still runs two threads part of the time."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def busy_elsewhere(stat: Path = Path("/proc/stat")) -> int:
    """How many other threads keep a CPU busy: the kernel's count of runnable threads
    (``procs_running``) less this one, the least of a few samples, since a busy process is
    runnable in every sample and a passing one (a kernel thread, a shell) is not. 0 where
    there is no ``/proc`` (not Linux)."""
    counts = []
    for sample in range(RUN_QUEUE_SAMPLES):
        try:
            text = stat.read_text()
        except OSError:
            return 0
        running = next((line for line in text.splitlines() if line.startswith("procs_running")), "")
        if not running:
            return 0
        counts.append(int(running.split()[1]) - 1)
        if sample + 1 < RUN_QUEUE_SAMPLES:
            time.sleep(RUN_QUEUE_PAUSE_S)
    return max(0, min(counts))


def choose_threads(requested: int | None = None, readers: int = 0) -> ThreadPolicy:
    """The intra-op threads to compute with: ``requested`` (``--threads``) when given, else
    ``OMP_NUM_THREADS`` when set, else the usable cores less those other processes are
    busy on and less the reader threads beyond the first (a reader mostly waits on the
    disk; more of them decode in parallel with the model), never fewer than one."""
    usable = usable_cores()
    if requested is not None:
        return ThreadPolicy(max(1, requested), "--threads", usable)
    from_env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if from_env.isdigit() and int(from_env) > 0:
        return ThreadPolicy(int(from_env), "OMP_NUM_THREADS", usable)
    busy = busy_elsewhere()
    threads = max(1, usable - busy - max(0, readers - 1))
    return ThreadPolicy(threads, "free cores", usable, busy)


def use_threads(requested: int | None = None, readers: int = 0) -> ThreadPolicy:
    """Choose the threads (:func:`choose_threads`) and apply them: before torch is imported,
    through ``OMP_NUM_THREADS`` and a short spin (``GOMP_SPINCOUNT``, unless the user set
    it or a wait policy); after, through ``torch.set_num_threads`` alone, since OpenMP has
    read its wait settings by then. Call it first thing in a notebook to get both."""
    policy = choose_threads(requested, readers)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(policy.threads)
        return policy
    os.environ["OMP_NUM_THREADS"] = str(policy.threads)
    if not {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & os.environ.keys():
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return policy
