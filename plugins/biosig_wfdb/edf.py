"""EDF and EDF+ files as lazily read biosig recordings, through ``pyedflib``.

pyedflib (a wrapper of the EDFlib C library) reads EDF, EDF+, BDF and BDF+, checks the
file size against the header when opening, and hides EDF+ annotation signals from its
signal list. wfdb's own EDF reader is not used: it counts the annotation signal as a
signal, takes the greatest common divisor of all rates as the record's rate and averages
samples down to it (160 Hz EEG becomes 80 Hz on the eegmmidb files).

EDFlib allows only a limited number of files open at once per process, so no file handle
is kept between calls: ``open_edf`` reads the header and closes the file, and each
``chunks`` iteration opens the file again and closes it when it ends or is abandoned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyedflib

from biosig import RecordingError

from .channels import select_channels

#: Labels of annotation signals. EDF+ readers hide them, but a plain EDF file written by a
#: careless tool may still carry one as an ordinary signal.
_ANNOTATION_LABELS = frozenset({"EDF Annotations", "BDF Annotations"})


class EdfRecording:
    """The signals of one EDF/EDF+ file, all at one rate, read per chunk in physical units.

    ``channels`` are the labels as stored, only stripped of surrounding spaces (eegmmidb
    pads labels with dots, ``Fc5.``, ``Cz..``, and they are kept). Build it with
    :func:`open_edf`.
    """

    def __init__(
        self,
        source: Path,
        indices: Sequence[int],
        labels: Sequence[str],
        units: Sequence[str],
        fs: float,
        n_samples: int,
    ) -> None:
        self.source = source
        self.id = source.stem
        self.channels = tuple(labels)
        self.units = tuple(units)
        self.fs = float(fs)
        self.n_samples = int(n_samples)
        self._indices = tuple(indices)

    def __repr__(self) -> str:
        return (
            f"EdfRecording(id={self.id!r}, fs={self.fs:g}, channels={len(self.channels)}, "
            f"n_samples={self.n_samples})"
        )

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        """Yield float32 blocks ``[C, n]`` (the last one shorter) in physical units, read
        from the file as the iteration reaches them."""
        if n < 1:
            raise ValueError(f"chunk size must be at least 1, got {n}")
        reader = _open(self.source, annotations=False)
        try:
            for start in range(0, self.n_samples, n):
                count = min(n, self.n_samples - start)
                block = np.empty((len(self._indices), count), dtype=np.float32)
                for row, index in enumerate(self._indices):
                    try:
                        x = reader.readSignal(index, start, count)
                    except Exception as exc:  # EDFlib read errors surface as OSError etc.
                        raise RecordingError(
                            f"{self.source}: cannot read samples {start}-{start + count} "
                            f"of signal {index} ({exc})"
                        ) from exc
                    if len(x) != count:  # pyedflib returns an empty array past the end
                        raise RecordingError(
                            f"{self.source}: cannot read samples {start}-{start + count} "
                            f"of signal {index} (got {len(x)})"
                        )
                    block[row] = x
                yield block
        finally:
            reader.close()

    def annotations(self) -> list[tuple[float, float, str]]:
        """The file's EDF+ annotations as ``(onset_s, duration_s, text)``, in file order;
        ``duration_s`` is 0.0 where the file gives none. A plain EDF file has none."""
        reader = _open(self.source, annotations=True)
        try:
            onsets, durations, texts = reader.readAnnotations()
        finally:
            reader.close()
        return [
            (float(onset), max(float(duration), 0.0), str(text))  # pyedflib: -1 = no duration
            for onset, duration, text in zip(onsets, durations, texts, strict=True)
        ]


def _open(path: Path, annotations: bool) -> pyedflib.EdfReader:
    """An open reader, or :class:`RecordingError` naming the file and EDFlib's complaint.

    Annotations are parsed only when asked for: EDFlib would otherwise scan every data
    record's annotation list on each open.
    """
    mode = pyedflib.READ_ALL_ANNOTATIONS if annotations else pyedflib.DO_NOT_READ_ANNOTATIONS
    try:
        return pyedflib.EdfReader(str(path), mode, pyedflib.CHECK_FILE_SIZE)
    except Exception as exc:  # OSError for damage, FileNotFoundError, ...
        message = str(exc)
        # pyedflib starts its message with the file name; do not say it twice.
        message = message.removeprefix(f"{path}: ")
        raise RecordingError(f"{path}: cannot open as EDF ({message})") from exc


def _check_size(path: Path) -> None:
    """A file whose size is not what its header says is damage, whatever EDFlib accepts: a
    file copied in text mode (every LF byte of the samples become CR LF) otherwise reads as
    a signal shifted by a byte here and there, and is predicted as if it were fine."""
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
            n_signals = int(head[252:256])
            handle.seek(256 + 216 * n_signals)
            per_record = sum(int(handle.read(8)) for _ in range(n_signals))
        header_bytes, n_records = int(head[184:192]), int(head[236:244])
    except (OSError, ValueError):
        return  # an unreadable header: EDFlib names what is wrong with it
    if n_records < 0:
        return  # -1: a recording still being written; its size says nothing yet
    sample_bytes = 3 if head[:1] == b"\xff" else 2  # BDF stores 24-bit samples
    expected = header_bytes + n_records * per_record * sample_bytes
    actual = path.stat().st_size
    if actual != expected:
        cause = "copied in text mode, or appended to" if actual > expected else "truncated"
        raise RecordingError(
            f"{path}: holds {actual:,} bytes where its header says {expected:,} "
            f"({n_records} data records of {per_record * sample_bytes:,} bytes after a "
            f"{header_bytes:,}-byte header): damaged ({cause})"
        )


def open_edf(path: Path, channels: Sequence[int] | None = None) -> EdfRecording:
    """Open an EDF/EDF+ file, selecting signals by index among its non-annotation signals
    (all by default). Reads the header only.

    Raises :class:`RecordingError` naming the file when it cannot be opened (corrupt,
    truncated), when an index is out of range, or when the selected signals have different
    sampling rates (choose signals of one rate with ``channels``).
    """
    path = Path(path)
    _check_size(path)
    reader = _open(path, annotations=False)
    try:
        # pyedflib already leaves EDF+ annotation signals out of signals_in_file.
        signals = [
            i
            for i in range(reader.signals_in_file)
            if reader.getLabel(i).strip() not in _ANNOTATION_LABELS
        ]
        labels = [reader.getLabel(i).strip() for i in signals]
        units = [reader.getPhysicalDimension(i).strip() for i in signals]
        rates = [float(reader.getSampleFrequency(i)) for i in signals]
        lengths = [int(reader.samples_in_file(i)) for i in signals]
    finally:
        reader.close()
    if not signals:
        raise RecordingError(f"{path}: EDF file has no signals")

    picked = select_channels(path, len(signals), channels, f"file has {len(signals)} signals")
    picked_rates = sorted({rates[i] for i in picked})
    if len(picked_rates) > 1:
        by_rate = "; ".join(
            f"{rate:g} Hz: " + ", ".join(str(i) for i in picked if rates[i] == rate)
            for rate in picked_rates
        )
        raise RecordingError(
            f"{path}: signals have different sampling rates ({by_rate}); select signals "
            "of one rate with --channels"
        )
    return EdfRecording(
        source=path,
        indices=[signals[i] for i in picked],
        labels=[labels[i] for i in picked],
        units=[units[i] for i in picked],
        fs=picked_rates[0],
        n_samples=min(lengths[i] for i in picked),
    )
