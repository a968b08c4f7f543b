"""How much memory one array read from a file may claim.

A file's header says how large its contents are; a few edited bytes (or a small archive of
deflated zeros) can claim gigabytes. Readers that must hold a whole array in memory check
the claim here, before allocating, so the refusal is one line naming the file and the
field instead of the machine swapping or the kernel killing the process.
"""

from __future__ import annotations

import os
from pathlib import Path

from .contract import RecordingError

try:  # not on Windows
    import resource
except ImportError:  # pragma: no cover
    resource = None  # type: ignore[assignment]

#: One array may take at most this share of the memory left to the process: the rest is
#: for the model, the batches and the arrays already held.
BUDGET_SHARE = 0.5
#: Claims up to this size are honoured without asking: any process can spare them, and
#: asking reads ``/proc`` (about 10 µs), once per recording where windows are planned.
SMALL_CLAIM = 1 << 20


def memory_budget() -> int:
    """Bytes one array read from a file may take: half of the memory the machine has
    available now, or of the address space left under ``ulimit -v``, whichever is less."""
    room = _available_memory()
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            room = min(room, max(soft - _address_space_in_use(), 0))
    return int(room * BUDGET_SHARE)


def check_claim(path: Path | str, field: str, n_bytes: int, hint: str = "") -> None:
    """Refuse an array of ``n_bytes`` claimed by ``field`` of ``path`` when it would not fit
    :func:`memory_budget`: a :class:`RecordingError` (damage: skipped among other inputs,
    fatal with ``--strict``) naming the file, the field and both sizes (``hint`` says what
    the user can do instead)."""
    if n_bytes <= SMALL_CLAIM:
        return
    budget = memory_budget()
    if n_bytes > budget:
        advice = f"; {hint}" if hint else ""
        raise RecordingError(
            f"{path}: {field} would take {n_bytes / 2**30:.2f} GiB in memory, more than the "
            f"{budget / 2**30:.2f} GiB this process can spare for one array{advice}"
        )


def _available_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _address_space_in_use() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
