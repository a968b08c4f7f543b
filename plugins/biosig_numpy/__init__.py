"""The ``numpy`` plugin: signals held in NumPy ``.npy`` / ``.npz`` files.

Accepted inputs:

* a ``.npy`` file shaped ``(N, L)`` or ``(N, C, L)``: each row is a recording whose id is
  its row index (``stem:row`` when several such files are given);
* a ``.npz`` file: either a ``signals`` array laid out as above (with an optional
  ``labels`` array beside it), or one array per key, each ``(L,)`` or ``(C, L)`` and named
  by its key;
* a directory of ``.npy`` files, one recording each, ``(L,)`` or ``(C, L)``, id = file stem;
  lengths may differ.

Labels come from a ``.npy`` (or the ``labels`` key of a ``.npz``) with one entry per
recording in input order, or a ``labels.tsv`` (``id<TAB>class``). Arrays are never loaded
with ``allow_pickle``; ``.npy`` files are memory-mapped and read a chunk at a time.
"""

from __future__ import annotations

import tokenize
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from biosig import (
    ArrayRecording,
    BiosigError,
    DemoData,
    LabelledInterval,
    Plugin,
    PluginDefaults,
    Recording,
    RecordingError,
    check_claim,
    expand_inputs,
    read_label_table,
    whole_recording_intervals,
)

__version__ = "0.1.0"

_BATCH_KEYS = ("signals", "x", "X", "data")
#: What NumPy's parser of a damaged .npy header raises besides ValueError.
_HEADER_ERRORS = (SyntaxError, tokenize.TokenError)
_LABEL_KEYS = ("labels", "y", "target")


def _load(path: Path) -> np.ndarray | np.lib.npyio.NpzFile:
    # Memory-mapped: a .npy header claiming more than the file holds is refused by NumPy
    # rather than allocated. (A .npz ignores the mode; its members are checked in _member.)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise BiosigError(f"{path}: file not found") from None
    except ValueError as exc:
        raise _value_error(path, exc) from None
    except (
        OSError,
        EOFError,
        OverflowError,
        zipfile.BadZipFile,
        zlib.error,
        *_HEADER_ERRORS,
    ) as exc:
        # Damage (empty, truncated; OverflowError: a negative shape in the header): one such
        # file among good ones is skipped with a warning, or stops the run with --strict.
        raise RecordingError(f"{path}: not a readable NumPy file ({exc})") from None


def _value_error(path: Path, exc: ValueError) -> BiosigError:
    # An object array read normally says "Object arrays cannot be loaded when
    # allow_pickle=False", memory-mapped "Python objects in dtype"; a file with neither a .npy
    # nor a .npz header is taken by NumPy for a pickle ("pickled data").
    text = str(exc)
    if "Object arrays" in text or "Python objects" in text:
        return BiosigError(
            f"{path}: holds Python objects, which biosig never unpickles; "
            "save numbers or fixed-width strings instead"
        )
    # The rest is damage, as in _load.
    if "pickle" in text:
        return RecordingError(
            f"{path}: not a readable NumPy file (no .npy or .npz header; biosig never unpickles)"
        )
    return RecordingError(f"{path}: not a readable NumPy file ({exc})")


def _member(path: Path, archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    """One array of a ``.npz``, read without unpickling (members load only when asked for),
    once its header's claim has been checked against the bytes stored and the memory budget."""
    try:
        _check_member_claim(path, archive.zip, key)
        return archive[key]
    except ValueError as exc:
        raise _value_error(path, exc) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, *_HEADER_ERRORS) as exc:
        raise RecordingError(f"{path}: array {key!r} is not readable ({exc})") from None


def _check_member_claim(path: Path, archive: zipfile.ZipFile, key: str) -> None:
    # A member is decompressed whole: a small archive of deflated zeros can claim gigabytes.
    # Its .npy header says how many bytes the array needs; the zip directory says how many
    # the member holds once inflated. The first may not exceed the second (else it is
    # damage), and neither may exceed what the process can spare.
    name = f"{key}.npy" if f"{key}.npy" in archive.namelist() else key
    info = archive.getinfo(name)
    with archive.open(info) as member:
        if np.lib.format.read_magic(member) == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        header_bytes = member.tell()
    claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if claimed > info.file_size - header_bytes:
        raise RecordingError(
            f"{path}: array {key!r} claims {claimed:,} bytes (shape {shape}) but the archive "
            f"holds {info.file_size - header_bytes:,}"
        )
    check_claim(
        path,
        f"array {key!r} (shape {shape}, {dtype})",
        info.file_size,
        "save large arrays as .npy files, which are read a chunk at a time",
    )


def _check_numeric(path: Path, array: np.ndarray, what: str = "array") -> None:
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise BiosigError(f"{path}: {what} has dtype {array.dtype}, expected numbers")


class NumpyPlugin(Plugin):
    name = "numpy"
    version = __version__
    api_version = 1
    summary = "NumPy arrays: .npy (N, L) or (N, C, L), .npz, or directories of .npy files"
    defaults = PluginDefaults(sample_rate=1.0, window=1024, hop=512, normalization="window")
    label_formats = "labels.npy / .npz 'labels' (one per recording, in order) or labels.tsv"

    def __init__(self) -> None:
        # .npy files found inside a directory hold one recording each; given directly,
        # a .npy holds a batch of rows. find() records which is which.
        self._one_recording_files: set[Path] = set()
        self._batch_files: set[Path] = set()

    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        # What an earlier find() saw must not change ids now (one batch file would read as
        # "stem:0" after a find() of two).
        self._one_recording_files = set()
        self._batch_files = set()
        files: list[Path] = []
        for path in expand_inputs(inputs):
            if path.is_dir():
                found = sorted(
                    p for p in path.rglob("*.npy") if not p.stem.lower().startswith("labels")
                )
                if not found:
                    raise BiosigError(f"{path}: directory holds no .npy files")
                self._one_recording_files.update(p.resolve() for p in found)
                files.extend(found)
            else:
                if path.suffix.lower() not in (".npy", ".npz"):
                    raise BiosigError(f"{path}: not a .npy or .npz file")
                self._batch_files.add(path.resolve())
                files.append(path)
        return files

    def open(self, path: Path) -> Iterator[Recording]:
        path = Path(path)
        if path.suffix.lower() == ".npz":
            yield from self._open_npz(path)
            return
        array = _load(path)
        _check_numeric(path, array)
        if path.resolve() in self._one_recording_files:
            yield self._single(path, path.stem, array)
            return
        prefix = f"{path.stem}:" if len(self._batch_files) > 1 else ""
        yield from self._rows(path, array, prefix)

    def _single(self, path: Path, rec_id: str, array: np.ndarray) -> Recording:
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] == 0:
            raise BiosigError(
                f"{path}: expected one recording shaped (L,) or (C, L), got {array.shape}"
            )
        return ArrayRecording(rec_id, array, self.defaults.sample_rate, source=path)

    def _rows(self, path: Path, array: np.ndarray, prefix: str = "") -> Iterator[Recording]:
        shape = array.shape
        if array.ndim == 2:
            array = array[:, None, :]
        if array.ndim != 3 or array.shape[0] == 0 or array.shape[2] == 0:
            raise BiosigError(
                f"{path}: expected an array shaped (N, L) or (N, C, L) with N, L > 0, got {shape}"
            )
        for row in range(array.shape[0]):
            yield ArrayRecording(
                f"{prefix}{row}", array[row], self.defaults.sample_rate, source=path
            )

    def _open_npz(self, path: Path) -> Iterator[Recording]:
        archive = _load(path)
        with archive:
            keys = list(archive.files)
            batch_key = next((k for k in _BATCH_KEYS if k in keys), None)
            if batch_key is not None:
                array = _member(path, archive, batch_key)
                _check_numeric(path, array, f"array {batch_key!r}")
                yield from self._rows(
                    path, array, f"{path.stem}:" if len(self._batch_files) > 1 else ""
                )
                return
            arrays = [k for k in keys if k not in _LABEL_KEYS]
            if not arrays:
                raise BiosigError(f"{path}: archive holds no signal arrays")
            for key in arrays:
                array = _member(path, archive, key)
                _check_numeric(path, array, f"array {key!r}")
                yield self._single(path, key, array)

    def labels(self, source: Path, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        source = Path(source)
        suffix = source.suffix.lower()
        if suffix in (".npy", ".npz"):
            values = self._label_array(source)
            if len(values) != len(recordings):
                raise BiosigError(
                    f"{source}: holds {len(values)} labels but the inputs hold "
                    f"{len(recordings)} recordings"
                )
            table = {rec.id: _label_text(v) for rec, v in zip(recordings, values, strict=True)}
        else:
            table = read_label_table(source)
        return whole_recording_intervals(table, recordings, source)

    def _label_array(self, source: Path) -> np.ndarray:
        loaded = _load(source)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                key = next((k for k in _LABEL_KEYS if k in loaded.files), None)
                if key is None:
                    raise BiosigError(f"{source}: archive has no 'labels' array")
                loaded = _member(source, loaded, key)
        values = np.asarray(loaded)
        if values.ndim == 2 and 1 in values.shape:
            values = values.reshape(-1)
        if values.ndim != 1:
            raise BiosigError(f"{source}: labels must be one per recording, got {values.shape}")
        if values.dtype.kind == "S":
            # Byte strings (np.save of bytes, or arrays from h5py) would otherwise become
            # classes like "b'spikes'".
            try:
                values = np.char.decode(values, "utf-8")
            except UnicodeDecodeError as exc:
                raise BiosigError(f"{source}: labels are not UTF-8 text ({exc})") from None
        if np.issubdtype(values.dtype, np.floating):
            if not np.all(np.isfinite(values)):
                raise BiosigError(f"{source}: labels contain NaN/inf, expected classes")
            if not np.all(values == np.round(values)):
                raise BiosigError(f"{source}: labels are fractional numbers, expected classes")
        return values

    def make_demo_data(self, directory: Path, seed: int = 0) -> DemoData:
        from .synthetic import write_demo_arrays

        return write_demo_arrays(directory, seed=seed)


def _label_text(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    return str(value)
