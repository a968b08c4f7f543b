"""FAST5 (HDF5) reads with h5py: the single-read layout (``Raw/Reads/Read_N`` with
``UniqueGlobalKey/channel_id``) and the multi-read layout (``read_<uuid>`` groups), gzip or
VBZ compressed.

h5py rather than ont-fast5-api: the latter fails at import on current setuptools (it
imports ``pkg_resources``), and both layouts are a few lines to read directly. Importing
``vbz_h5py_plugin`` registers the VBZ filter (HDF5 filter 32020) with no environment
variables.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import vbz_h5py_plugin  # noqa: F401  (registers the VBZ filter on import)

from biosig import RecordingError

from .reads import NanoporeRead


class _OpenFiles(threading.local):
    """The last few files opened, kept open: reads are decoded one after another from the
    same file, and reopening an HDF5 file per read would dominate the cost.

    One cache per thread: prediction reads recordings on several reader threads, and a
    shared cache would let one thread close the file another is reading.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._files: OrderedDict[Path, h5py.File] = OrderedDict()

    def get(self, path: Path) -> h5py.File:
        handle = self._files.pop(path, None)
        if handle is None or not handle.id.valid:
            handle = h5py.File(path, "r")
        self._files[path] = handle
        while len(self._files) > self.size:
            # Dropped, not closed: a read being decoded (or a file's listing still being
            # walked) may hold the handle; the file closes when its last user lets go.
            self._files.popitem(last=False)
        return handle


_open_files = _OpenFiles()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


#: What h5py raises on a damaged file: HDF5's own errors surface as OSError, KeyError,
#: ValueError or RuntimeError ("Unable to synchronously check link existence"), depending
#: on the call that meets the damage; a damaged attribute can give a TypeError, and an
#: object whose header was damaged into another kind (a group read as a named type) an
#: AttributeError.
HDF5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, AttributeError)

#: Samples decoded per HDF5 read: HDF5 decompresses only the chunks a slice touches.
BLOCK = 1 << 18


def _signal_blocks(path: Path, dataset: str, read_id: str):
    def decode() -> Iterator[np.ndarray]:
        try:
            signal = _open_files.get(path)[dataset]
            n = signal.shape[0]
        except HDF5_ERRORS as exc:
            raise RecordingError(f"{path}: read {read_id}: unreadable ({exc})") from None
        for start in range(0, n, BLOCK):
            try:
                block = signal[start : start + BLOCK]
            except HDF5_ERRORS as exc:
                raise RecordingError(
                    f"{path}: read {read_id}: signal cannot be decoded at sample {start} ({exc})"
                ) from None
            yield np.asarray(block, dtype=np.int16)

    return decode


def _read(path: Path, raw_group: h5py.Group, channel: h5py.Group) -> NanoporeRead:
    if not isinstance(raw_group, h5py.Group) or not isinstance(channel, h5py.Group):
        # A damaged object header can turn a group into a dataset or a named type.
        raise RecordingError(f"{path}: {raw_group.name}: not an HDF5 group as FAST5 has it")
    read_id = _text(raw_group.attrs["read_id"])
    if "Signal" not in raw_group:
        raise RecordingError(f"{path}: read {read_id}: no raw signal")
    signal = raw_group["Signal"]
    if not isinstance(signal, h5py.Dataset) or signal.ndim != 1:
        raise RecordingError(f"{path}: read {read_id}: raw signal is not a 1-D dataset")
    if not np.issubdtype(signal.dtype, np.integer):
        # Raw current is ADC counts; a float signal would be cast to int16 and wrap.
        raise RecordingError(
            f"{path}: read {read_id}: raw signal stored as {signal.dtype}, not integer ADC counts"
        )
    number = _calibration(path, read_id, channel.attrs)
    return NanoporeRead(
        read_id=read_id,
        fs=number("sampling_rate", positive=True),
        n_samples=int(signal.shape[0]),
        offset=number("offset"),
        scale=number("range", positive=True) / number("digitisation", positive=True),
        source=path,
        decode=_signal_blocks(path, f"{raw_group.name}/Signal", read_id),
    )


def _calibration(path: Path, read_id: str, attrs):
    """A reader of the channel's numeric attributes that names the one missing, not a
    number, or (``positive``) not above zero: a zero digitisation would divide by zero and
    a negative rate would drop the read in silence further on."""

    def number(name: str, positive: bool = False) -> float:
        try:
            value = float(attrs[name])
        except (KeyError, TypeError, ValueError):
            raise RecordingError(f"{path}: read {read_id}: no numeric {name}") from None
        if not math.isfinite(value) or (positive and value <= 0):
            raise RecordingError(f"{path}: read {read_id}: {name} is {value:g}")
        return value

    return number


def _read_locations(handle: h5py.File) -> list[tuple[str, str, str]]:
    """``(name, raw group, channel group)`` paths of each read, for either layout."""
    if "Raw" in handle and "UniqueGlobalKey" in handle:  # single-read layout
        return [
            (name, f"Raw/Reads/{name}", "UniqueGlobalKey/channel_id")
            for name in handle["Raw/Reads"]
        ]
    return [(k, f"{k}/Raw", f"{k}/channel_id") for k in handle if k.startswith("read_")]


def open_fast5(path: Path) -> Iterator[NanoporeRead | RecordingError]:
    """Yield the reads of one FAST5 file, single- or multi-read; a damaged read is yielded
    as a :class:`RecordingError` in its place."""
    try:
        handle = _open_files.get(path)
        locations = _read_locations(handle)
    except HDF5_ERRORS as exc:
        raise RecordingError(f"{path}: not a readable FAST5 file ({exc})") from None
    if not locations:
        raise RecordingError(f"{path}: FAST5 file holds no reads")
    for name, raw_path, channel_path in locations:
        try:
            read = _read(path, handle[raw_path], handle[channel_path])
        except RecordingError as error:
            read = error
        except HDF5_ERRORS as exc:
            read = RecordingError(f"{path}: {name}: incomplete read metadata ({exc})")
        yield read
