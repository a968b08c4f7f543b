"""Turning what users type after ``--input`` into paths, the same way for every plugin."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from ..errors import BiosigError

_GLOB_CHARACTERS = "*?["


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Existing files and directories named by ``inputs``, globs expanded (``**`` recurses),
    in the order given.

    A path that does not exist, or a pattern that matches nothing, is a :class:`BiosigError`
    naming it. What to do with a directory is the plugin's business.
    """
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.exists():
            paths.append(path)
        elif any(ch in str(item) for ch in _GLOB_CHARACTERS):
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True))
            if not matches:
                raise BiosigError(f"{item}: pattern matches no file")
            paths.extend(matches)
        else:
            raise BiosigError(f"{path}: file not found")
    for path in paths:
        check_regular(path)
    return paths


def check_regular(path: Path, what: str = "input") -> None:
    """Refuse a FIFO, socket or device named as a file: reading one would wait for a
    writer that may never come (or never end)."""
    if not (path.is_file() or path.is_dir()):
        raise BiosigError(f"{path}: not a regular file or directory ({what} refused)")
