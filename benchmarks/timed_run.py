"""One benchmark step: a command run with its output in a log, timed in wall and CPU seconds.

Shared by the benchmark scripts beside it (``ucr.py``, ``pretrain_lift.py``), which import
it as a sibling module (run them as ``python benchmarks/NAME.py``).
"""

from __future__ import annotations

import os
import resource
import shlex
import subprocess
import time
from pathlib import Path


def timed(command: list[str], log_path: Path, what: str) -> tuple[float, float, float, float]:
    """Run ``command`` with its output in ``log_path`` (after the command line itself).

    Returns wall seconds, CPU seconds (user + system of the command and its children, all
    threads), and the 1-minute load average before and after. A failure exits the
    benchmark with one line naming ``what`` and the log.
    """
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Path(log_path).open("w") as log:
        log.write(shlex.join(command) + "\n")
        log.flush()
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    if done.returncode:
        raise SystemExit(f"{what} failed ({done.returncode}); see {log_path}")
    return wall, cpu, load_before, os.getloadavg()[0]
