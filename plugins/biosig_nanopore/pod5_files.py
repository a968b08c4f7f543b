"""POD5 reads through ONT's ``pod5`` package, with signal rows decoded when a read is used."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pod5

from biosig import RecordingError

from .reads import NanoporeRead


class _OpenReaders(threading.local):
    """The last few POD5 files opened, kept open; one cache per thread (see
    ``fast5._OpenFiles``)."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._readers: OrderedDict[Path, pod5.Reader] = OrderedDict()

    def get(self, path: Path) -> pod5.Reader:
        reader = self._readers.pop(path, None)
        if reader is None:
            reader = pod5.Reader(path)
        self._readers[path] = reader
        while len(self._readers) > self.size:
            # Dropped, not closed: a read being decoded (or a file's listing still being
            # walked) may hold the handle; the file closes when its last user lets go.
            self._readers.popitem(last=False)
        return reader


_open_readers = _OpenReaders()


def _signal_rows(path: Path, batch: int, row: int, read_id: str):
    def decode() -> Iterator[np.ndarray]:
        try:
            record = _open_readers.get(path).get_batch(batch).get_read(row)
            n_rows = len(record.signal_rows)
        except Exception as exc:  # pod5 raises RuntimeError, OSError, pyarrow errors…
            raise RecordingError(f"{path}: read {read_id}: unreadable ({exc})") from None
        for i in range(n_rows):  # one signal row (≤ ~100k samples) decoded at a time
            try:
                part = record.signal_for_chunk(i)
            except Exception as exc:
                raise RecordingError(
                    f"{path}: read {read_id}: signal row {i} cannot be decoded ({exc})"
                ) from None
            yield np.asarray(part, dtype=np.int16)

    return decode


def _check_tables(path: Path, reader: pod5.Reader) -> None:
    """Validate every record batch of the file's Arrow tables (offsets and lengths within
    their buffers) before a value is read: pod5 reads them unchecked, and a damaged offset
    then crashes the process (a segmentation fault in ``as_py``) instead of raising."""
    try:
        for name in ("read_table", "run_info_table", "signal_table"):
            table = getattr(reader, name)
            for index in range(table.num_record_batches):
                table.get_batch(index).validate(full=True)
    except Exception as exc:  # pyarrow.ArrowInvalid, OSError…
        raise RecordingError(f"{path}: damaged POD5 file ({name}: {exc})") from None


def open_pod5(path: Path) -> Iterator[NanoporeRead | RecordingError]:
    """Yield the reads of one POD5 file; a read whose metadata is unreadable is yielded as a
    :class:`RecordingError` in its place."""
    try:
        reader = _open_readers.get(path)
        n_batches = reader.batch_count
    except Exception as exc:  # "Invalid signature in file" and friends
        raise RecordingError(f"{path}: not a readable POD5 file ({exc})") from None
    _check_tables(path, reader)
    for batch_index in range(n_batches):
        try:
            batch = reader.get_batch(batch_index)
        except Exception as exc:
            raise RecordingError(f"{path}: damaged POD5 read table ({exc})") from None
        for row in range(batch.num_reads):
            try:
                record = batch.get_read(row)
                read_id = str(record.read_id)
                calibration = record.calibration
                n_samples = int(record.num_samples)
                yield NanoporeRead(
                    read_id=read_id,
                    fs=float(record.run_info.sample_rate),
                    n_samples=n_samples,
                    offset=float(calibration.offset),
                    scale=float(calibration.scale),
                    source=path,
                    decode=_signal_rows(path, batch_index, row, read_id),
                )
            except Exception as exc:
                yield RecordingError(f"{path}: read at row {row}: unreadable metadata ({exc})")
