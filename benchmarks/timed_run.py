"""One benchmark step: a command run with its output in a log, timed in wall and CPU seconds.

Shared by the benchmark scripts beside it (``ucr.py``, ``pretrain_lift.py``, ``accuracy.py``),
which import it as a sibling module (run them as ``python benchmarks/NAME.py``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from pathlib import Path


def timed(
    command: list[str],
    log_path: Path,
    what: str,
    env: dict[str, str] | None = None,
    stdout_path: Path | None = None,
) -> tuple[float, float, float, float]:
    """Run ``command`` with its output in ``log_path`` (after the command line itself).

    ``env`` adds (or replaces) environment variables for the command; with ``stdout_path``
    its standard output goes there and only its standard error to the log.

    Returns wall seconds, CPU seconds (user + system of the command and the children it
    waited for, all threads), and the 1-minute load average before and after. The CPU time
    is the command's own (``wait4``), so commands timed at once from several threads do not
    count each other's. A failure exits the benchmark with one line naming ``what`` and the
    log.
    """
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    environment = {**os.environ, **env} if env else None
    with contextlib.ExitStack() as files:
        log = files.enter_context(Path(log_path).open("w"))
        log.write(shlex.join(command) + "\n")
        log.flush()
        out = files.enter_context(Path(stdout_path).open("w")) if stdout_path else None
        process = subprocess.Popen(
            command,
            stdout=out or log,
            stderr=log if out else subprocess.STDOUT,
            env=environment,
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    if process.returncode:
        raise SystemExit(f"{what} failed ({process.returncode}); see {log_path}")
    return wall, cpu, load_before, os.getloadavg()[0]
