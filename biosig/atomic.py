"""Write files and directories under a temporary name and rename them into place, so a
crash or a bad input never leaves a half-written output where a complete one is expected.

The temporary names carry the writer's process id (``.NAME.tmp-PID``, ``.NAME.old-PID``).
A process killed outright (SIGKILL, a power cut) cannot remove its own: the next write of
the same output does, for every process id no longer alive, and puts back an output that
was moved aside but never replaced."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open ``path``'s temporary twin; on success rename it to ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_litter(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8", newline=None) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary directory to fill; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_litter(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def point_link(link: Path, target: Path) -> None:
    """Make ``link`` a relative symlink to ``target``, replacing any earlier one atomically."""
    link = Path(link)
    clear_litter(link)
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


def clear_litter(path: Path) -> None:
    """Remove the temporary twins of ``path`` that processes no longer alive left behind;
    an output one of them had moved aside (``.old-PID``) and not yet replaced is put back."""
    path = Path(path)
    for kind, twin in litter(path):
        with contextlib.suppress(OSError):
            if kind == "old" and not path.exists() and not path.is_symlink():
                os.replace(twin, path)
            else:
                remove(twin)


def litter(path: Path) -> list[tuple[str, Path]]:
    """``(kind, twin)`` for each temporary twin of ``path`` (kind ``tmp`` or ``old``) whose
    process is no longer alive."""
    path = Path(path)
    try:
        siblings = list(path.parent.glob(f".{glob.escape(path.name)}.*-*"))
    except OSError:
        return []
    found = []
    for twin in siblings:
        kind, _, pid = twin.name[len(path.name) + 2 :].rpartition("-")
        if kind in ("tmp", "old") and pid.isdigit() and not _alive(int(pid)):
            found.append((kind, twin))
    return found


def remove(path: Path) -> None:
    """Remove a file, link or directory tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive, and not ours to judge
    return True
