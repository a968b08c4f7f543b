"""The ``vibration`` plugin: accelerometer signals from CSV/TSV and MATLAB v5 files.

* Inputs: ``.csv``/``.tsv``/``.txt`` files (delimiter and header sniffed from the content;
  a time column by name or by rising steadily; every other numeric column a channel) and
  MATLAB v5 ``.mat`` files (CWRU: the variables matching ``_DE_time$``), or directories
  searched for ``.csv``, ``.tsv`` and ``.mat`` (leaving out ``labels*`` and ``manifest*``).
  One recording per file, its id the file stem, or where files found together share a
  stem (``normal/0.csv``, ``faulty/0.csv``) the shortest trailing path that tells them
  apart (``normal/0``, ``faulty/0``). ``--channels`` picks columns or variables by name or
  regular expression. MATLAB v7.3 (HDF5) files are refused.
* Sample rate, per file: ``--fs``; else a sidecar ``<file>.json`` (``{"fs": 12000}``) or
  the ``fs`` column of ``--manifest``; else the CSV time column (one stepping by whole
  numbers, as milliseconds or a counter do, or slower than 1 Hz gives none: an error unless
  a rate is given above it; dropouts anywhere in the file are warned about); else a hint in
  the file or folder name (``12k_DE/``, ``_48k``, ``1000Hz``). None of these is an error:
  never a silent default. Recordings are resampled (anti-aliased, ``resample_poly``) to
  the model's 12 kHz, so a 48 kHz baseline and 12 kHz fault files can be mixed.
* Labels (``--labels``): ``folder`` (the parent folder's name), ``manifest`` (the label
  column of ``--manifest``), or a table, ``file<TAB>class`` or
  ``file<TAB>start<TAB>stop<TAB>class`` in original samples (a file by its id, stem or
  name, or where stems repeat by a trailing path: ``normal/0`` or ``normal/0.csv``).
* Splits: by the manifest's ``group`` (a run: consecutive files of one session), else by
  ``--group-pattern`` on the file's path, else by file; classes held by a single file are
  split in time by the core. Windows of 2048 samples (171 ms at 12 kHz), each z-scored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from biosig import (
    BiosigError,
    DemoData,
    LabelledInterval,
    Plugin,
    PluginDefaults,
    PluginOption,
    Recording,
    RecordingError,
    expand_inputs,
    table_intervals,
    whole_recording_intervals,
)

from .channels import parse_channels
from .manifest import Manifest, ManifestEntry, read_manifest
from .rate import resolve_rate

__version__ = "0.1.0"

LABEL_KEYWORDS = ("folder", "manifest")
#: What a directory is searched for; a .txt file (often a README) is read only when named.
SCANNED = (".csv", ".tsv", ".mat")
SUFFIXES = (*SCANNED, ".txt")


class ManifestPath(str):
    """The ``manifest`` option's type: a path made absolute when given, so the value a
    checkpoint keeps still names the file from another working directory."""

    def __new__(cls, value: object) -> str:  # type: ignore[misc]
        text = str(value).strip()
        # a plain str, so checkpoints and settings hold nothing of this module
        return str(Path(text).expanduser().resolve()) if text else ""


class VibrationPlugin(Plugin):
    # No docstring of its own: `biosig plugins show vibration` then prints the module's.

    api_version = 1
    name = "vibration"
    version = __version__
    summary = "Vibration from CSV/TSV (time column, accX/accY/accZ…) or MATLAB v5 .mat (CWRU)"
    defaults = PluginDefaults(
        sample_rate=12000.0,
        window=2048,
        hop=1024,
        normalization="window",
        split="auto",
        labels="folder",  # one folder per class unless --labels says otherwise
    )
    label_keywords = LABEL_KEYWORDS
    label_formats = (
        "folder (parent folder name) | manifest (its label column), or a table: "
        "file<TAB>class, file<TAB>start<TAB>stop<TAB>class"
    )
    options = (
        PluginOption(
            "channels",
            "",
            "columns or .mat variables by name or regex, comma-separated "
            "[CSV: every numeric column but time; .mat: _DE_time$]",
            preprocessing=True,
        ),
        PluginOption(
            "fs",
            0.0,
            "sample rate of the input files in Hz, over any other source [0: not given]",
            float,
        ),
        PluginOption(
            "manifest",
            "",
            "CSV with header path,label,group,fs (label, group, fs optional); a path matches "
            "a file by its trailing components",
            ManifestPath,
            path=True,
        ),
        PluginOption(
            "group_pattern",
            "",
            "regex on the file's path whose first group is its run, for splits "
            "[the manifest's group, else the file]",
        ),
        PluginOption(
            "unit",
            "g",
            "unit of the samples, for plot axes (files do not say; CWRU's are in g)",
        ),
    )

    @property
    def signal_unit(self) -> str:  # type: ignore[override]
        """The ``--unit`` option: plots label the y axes with it."""
        return str(self.settings["unit"] or "")

    # ------------------------------------------------------------------------ options

    def configure(self, values: dict) -> None:
        """Set options, checking the rate, channels and pattern at once. The manifest is
        read by ``find``, still before any recording: a pipeline's manifest may be
        overridden by a flag configured after it."""
        super().configure(values)
        fs = float(self.settings["fs"] or 0)
        if not math.isfinite(fs) or fs < 0:
            raise BiosigError(f"--fs {self.settings['fs']}: give a rate in Hz, or 0")
        parse_channels(self.settings["channels"])
        self._group_regex()

    def manifest(self) -> Manifest | None:
        """The ``--manifest`` file, read once; ``None`` when none is given."""
        path = str(self.settings["manifest"] or "")
        if not path:
            return None
        cached = getattr(self, "_manifest", None)
        if cached is None or str(cached.path) != path:
            cached = self._manifest = read_manifest(Path(path))
        return cached

    def _entry(self, path: Path) -> ManifestEntry | None:
        manifest = self.manifest()
        return manifest.lookup(path) if manifest else None

    def _group_regex(self) -> re.Pattern | None:
        pattern = str(self.settings["group_pattern"])
        if not pattern:
            return None
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise BiosigError(
                f"--group-pattern {pattern!r}: not a regular expression ({exc})"
            ) from None

    # ------------------------------------------------------------------ files and records

    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        files: list[Path] = []
        manifest = self.manifest()
        for path in expand_inputs(inputs):
            if path.is_dir():
                found = sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix.lower() in SCANNED
                    and p.is_file()
                    and not p.name.startswith(".")
                    and not p.stem.lower().startswith(("labels", "manifest"))
                    and not (manifest and p.resolve() == manifest.path)
                )
                if not found:
                    raise BiosigError(f"{path}: no {', '.join(SCANNED)} files found there")
                files.extend(found)
            elif path.suffix.lower() in SUFFIXES:
                files.append(path)
            else:
                raise BiosigError(f"{path}: not a CSV/TSV/TXT or MATLAB .mat file")
        # Ids over all the files found, so that `predict` and `evaluate` given the same
        # inputs name recordings as `train` did.
        self._ids = unique_ids(files)
        return files

    def _id(self, path: Path) -> str:
        """The id ``find`` gave the file; its stem for a file opened without ``find``."""
        ids = getattr(self, "_ids", {})
        return ids.get(path.resolve()) or path.stem

    def open(self, path: Path) -> Iterator[Recording | RecordingError]:
        path = Path(path)
        entry = self._entry(path)
        flag = float(self.settings["fs"] or 0) or None
        items = parse_channels(self.settings["channels"])
        if path.suffix.lower() == ".mat":
            from .mat_files import MatRecording, inspect_mat

            names, n_samples = inspect_mat(path, items)
            fs, _ = resolve_rate(path, flag, entry.fs if entry else None)
            yield MatRecording(path, names, n_samples, fs, self._id(path))
            return
        from .csv_files import CsvRecording, inspect_csv

        layout, columns, scan, time_rate = inspect_csv(path, items)
        problem = layout.time.problem if layout.time else None
        fs, _ = resolve_rate(path, flag, entry.fs if entry else None, time_rate, problem)
        yield CsvRecording(path, layout, columns, scan, fs, self._id(path))

    # ------------------------------------------------------------------ labels and groups

    def labels(self, source: Path | str, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        if source == "folder":
            table = {rec.id: _path_of(rec).parent.name for rec in recordings}
            return whole_recording_intervals(table, recordings, Path("--labels folder"))
        if source == "manifest":
            return self._manifest_labels(recordings)
        if isinstance(source, str) and not Path(source).exists():
            raise BiosigError(f"--labels {source}: choose {', '.join(LABEL_KEYWORDS)} or a file")
        return _table_labels(Path(source), recordings)

    def _manifest_labels(self, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        manifest = self.manifest()
        if manifest is None:
            raise BiosigError("--labels manifest: give the manifest with --manifest")
        if not manifest.has_labels:
            raise BiosigError(f"{manifest.path}: --labels manifest needs a label column")
        table = {}
        for rec in recordings:
            entry = manifest.lookup(_path_of(rec))
            if entry is not None and entry.label:
                table[rec.id] = entry.label
        if not table:
            paths = ", ".join(e.path for e in manifest.entries[:3])
            files = ", ".join(str(_path_of(r)) for r in recordings[:3]) or "none"
            raise BiosigError(
                f"{manifest.path}: none of its paths matches an input file "
                f"(paths start {paths}; files start {files})"
            )
        return whole_recording_intervals(table, recordings, manifest.path)

    def group(self, recording: Recording) -> str:
        """The run a recording belongs to: the manifest's group, else the first group of
        ``--group-pattern`` in the file's path, else the file itself."""
        path = _path_of(recording)
        entry = self._entry(path)
        if entry is not None and entry.group:
            return entry.group
        regex = self._group_regex()
        if regex is None:
            return recording.id
        match = regex.search(path.as_posix())
        if match is None:
            raise BiosigError(
                f"{path} does not match --group-pattern {regex.pattern!r}; every file needs "
                "a run for a leakage-safe split"
            )
        return match.group(1) if match.groups() else match.group(0)

    # ------------------------------------------------------------------------ demo

    def make_demo_data(self, directory: Path, seed: int = 0) -> DemoData:
        from .synthetic import write_demo_data

        return write_demo_data(Path(directory), seed=seed)


def _path_of(recording: Recording) -> Path:
    source = getattr(recording, "source", None)
    if source is None:
        raise BiosigError(f"recording {recording.id}: not read by the vibration plugin")
    return Path(source)


def unique_ids(paths: Sequence[Path]) -> dict[Path, str]:
    """An id for each file (by resolved path), unique among them: its stem where no other
    file has that stem, else the shortest trailing path without the suffix that no other
    file shares (``normal/0``), else with it (``a/0.csv`` beside ``a/0.mat``)."""
    files = list(dict.fromkeys(Path(p).resolve() for p in paths))
    options = {f: _trailing_names(f) for f in files}
    counts: dict[tuple[int, str], int] = {}
    for names in options.values():
        for option in names:
            counts[option] = counts.get(option, 0) + 1
    ids = {}
    for file, names in options.items():
        # the root's parts make a full path unique, save for one file found twice
        ids[file] = next((name for key, name in names if counts[(key, name)] == 1), str(file))
    return ids


def _trailing_names(path: Path) -> list[tuple[int, str]]:
    """A file's candidate ids, shortest first, each keyed by its kind and length: trailing
    paths ending in the stem, then ending in the name."""
    folders = path.parent.parts[1:]  # not the root
    stems = ["/".join((*folders[len(folders) - k :], path.stem)) for k in range(len(folders) + 1)]
    names = ["/".join((*folders[len(folders) - k :], path.name)) for k in range(len(folders) + 1)]
    return [(k, n) for k, n in enumerate(stems)] + [(1000 + k, n) for k, n in enumerate(names)]


def _table_labels(path: Path, recordings: Sequence[Recording]) -> list[LabelledInterval]:
    """A labels table whose first column names files by id, stem or name (``H5``,
    ``H5.csv``), or by a trailing path (``normal/0``, ``normal/0.csv``) where stems repeat;
    a key that names several files is an error listing them."""
    aliases: dict[str, list[str]] = {}
    for rec in recordings:
        for _, name in _trailing_names(_path_of(rec).resolve()):
            aliases.setdefault(name, []).append(rec.id)
    ids = {rec.id for rec in recordings}

    def resolve(key: str) -> str:
        if key in ids:
            return key
        found = aliases.get(_norm_key(key), [])
        if len(found) > 1:
            raise BiosigError(
                f"{path}: {key!r} names {len(found)} files ({', '.join(sorted(found))}); "
                "name each by a trailing path as its id does"
            )
        return found[0] if found else key

    return table_intervals(path, recordings, resolve_id=resolve)


def _norm_key(key: str) -> str:
    # "./normal/0.csv" and "normal\\0.csv" name what "normal/0.csv" does
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)
