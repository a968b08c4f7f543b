"""Manifests: one CSV row per file giving its class, run and sample rate.

    path,label,group,fs
    cwru/Normal_0.mat,normal,,48000
    cwru/IR007_0.mat,inner_race,,12000

Only ``path`` is required. A row's path matches a file by its trailing components, so
``cwru/Normal_0.mat`` names ``/anywhere/cwru/Normal_0.mat`` and the manifest works wherever
the data lives; an absolute path matches only itself. When several rows match one file the
longest (most specific) path wins.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path, PurePath

from biosig import BiosigError

from .rate import parse_rate

COLUMNS = ("path", "label", "group", "fs")


@dataclass(frozen=True)
class ManifestEntry:
    """One row: the file's path as written, and its class, run and rate where given."""

    path: str
    label: str | None
    group: str | None
    fs: float | None
    line: int


class Manifest:
    """The rows of a manifest file, looked up by the files they describe."""

    def __init__(self, path: Path, entries: list[ManifestEntry]) -> None:
        self.path = Path(path)
        self.entries = entries
        # Rows by their last component, so a lookup compares a few rows, not all of them.
        self._by_name: dict[str, list[tuple[tuple[str, ...], ManifestEntry]]] = {}
        for entry in entries:
            parts = _parts(entry.path)
            self._by_name.setdefault(parts[-1], []).append((parts, entry))

    @property
    def has_labels(self) -> bool:
        return any(e.label for e in self.entries)

    def lookup(self, file: Path) -> ManifestEntry | None:
        """The row describing ``file``, or ``None``."""
        file_parts = Path(file).resolve().parts
        best: tuple[int, ManifestEntry] | None = None
        for parts, entry in self._by_name.get(file_parts[-1], []):
            if PurePath(entry.path).is_absolute():
                matches = parts == file_parts
            else:
                matches = file_parts[-len(parts) :] == parts
            if matches and (best is None or len(parts) > best[0]):
                best = (len(parts), entry)
        return best[1] if best else None


def _parts(text: str) -> tuple[str, ...]:
    # "./a/b.csv" and "a\\b.csv" (written on Windows) name the same file as "a/b.csv"
    path = PurePath(text.replace("\\", "/"))
    return tuple(p for p in path.parts if p not in (".", ""))


def read_manifest(path: Path) -> Manifest:
    """Read a manifest (header ``path[,label][,group][,fs]``, any order); each problem is one
    line naming the file and the row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BiosigError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BiosigError(f"{path}: cannot read manifest ({exc})") from None
    rows = [(n, row) for n, row in enumerate(csv.reader(text.splitlines()), 1) if any(row)]
    if not rows:
        raise BiosigError(f"{path}: manifest is empty; expected a header path,label,group,fs")
    header_line, header = rows[0]
    names = [h.strip().lower() for h in header]
    unknown = [n for n in names if n not in COLUMNS]
    if "path" not in names or unknown or len(set(names)) != len(names):
        raise BiosigError(
            f"{path}:{header_line}: expected a header of path,label,group,fs "
            f"(label, group and fs optional), got {','.join(header)}"
        )
    entries: list[ManifestEntry] = []
    seen: dict[tuple[str, ...], int] = {}
    for number, row in rows[1:]:
        if len(row) != len(names):
            raise BiosigError(f"{path}:{number}: expected {len(names)} fields, got {len(row)}")
        cells = {name: cell.strip() for name, cell in zip(names, row, strict=True)}
        if not cells["path"]:
            raise BiosigError(f"{path}:{number}: the path is empty")
        parts = _parts(cells["path"])
        if parts in seen:
            raise BiosigError(
                f"{path}:{number}: {cells['path']} is already listed on line {seen[parts]}"
            )
        seen[parts] = number
        entries.append(
            ManifestEntry(
                path=cells["path"],
                label=cells.get("label") or None,
                group=cells.get("group") or None,
                fs=parse_rate(cells.get("fs", ""), f"{path}:{number}"),
                line=number,
            )
        )
    if not entries:
        raise BiosigError(f"{path}: manifest lists no files")
    return Manifest(path, entries)
