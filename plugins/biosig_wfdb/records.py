"""WFDB records (PhysioNet's native format) as lazily read biosig recordings.

Reading is delegated to the ``wfdb`` package, the reference implementation: it knows every
storage format (212, 16, 61, 80, FLAC 516, ...), skews, byte offsets, several signal files
per record and multi-segment records. This module only decides *what* to read and when:

* Opening reads the header alone (``wfdb.rdheader``), plus the segment headers of a
  multi-segment record, and checks up front that every signal file named there exists and
  is long enough for the header's length, so a damaged record is refused before any of it
  is used.
* ``chunks(n)`` calls ``wfdb.rdrecord(sampfrom, sampto, smooth_frames=False)`` on
  consecutive blocks of frames, so a 24-hour record is never held whole.

Multi-rate records. A WFDB frame holds ``samps_per_frame`` (spf) samples of each signal, so
signals of one record can have different rates (MIMIC: ECG at 4 spf, ABP at 1 spf). wfdb's
default ``smooth_frames=True`` *averages* each frame down to one sample, which throws away
most of an ECG's bandwidth. Instead the recording's rate is the frame rate times the largest
spf among the selected channels, and a slower channel is upsampled to it with
``scipy.signal.resample_poly`` (a windowed-sinc polyphase filter). So that the output does
not depend on how the record is chunked, each block is read with a margin of extra frames
on both sides, wide enough to cover the filter, and the margin is cut off again: a sample
in the middle of the record sees the same neighbours whether it is read in one block or
in many. At the record's ends both ways see the same zero padding. A NaN (a gap) in a
slower channel makes every upsampled sample whose filter reaches it NaN as well: those
samples were computed from missing data, so they are reported missing rather than guessed.

Multi-segment records (fixed or variable layout) are read through the top-level header;
wfdb stitches the segments and returns NaN where a signal is absent (``~`` gap segments,
or a variable-layout segment lacking the signal). NaN is kept: the plugin's preprocessor
treats it as "missing".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import wfdb

from biosig import BiosigError, RecordingError

from .channels import select_channels

#: Bits per stored sample of the uncompressed WFDB formats. Formats 310 and 311 pack three
#: 10-bit samples into 4 bytes. The FLAC formats (508, 516, 524) are compressed, so their
#: file size says nothing about their length and they are left out.
_FORMAT_BITS: dict[str, Fraction] = {
    "8": Fraction(8),
    "16": Fraction(16),
    "24": Fraction(24),
    "32": Fraction(32),
    "61": Fraction(16),
    "80": Fraction(8),
    "160": Fraction(16),
    "212": Fraction(12),
    "310": Fraction(32, 3),
    "311": Fraction(32, 3),
}

#: ``resample_poly``'s default FIR filter reaches ``10 * max(up, down)`` taps each side at
#: the upsampled rate; see :func:`_margin_frames`.
_RESAMPLE_HALF_TAPS = 10


class WfdbRecording:
    """One WFDB record (single- or multi-segment), read lazily with
    ``wfdb.rdrecord(sampfrom, sampto)``.

    ``fs`` is the rate of the chunks: the frame rate times the largest samples-per-frame
    among the selected channels; ``n_samples`` counts samples at that rate.
    ``native_rates`` gives each selected channel's own rate. Build it with
    :func:`open_wfdb`.
    """

    def __init__(
        self,
        source: Path,
        frame_rate: float,
        n_frames: int,
        indices: Sequence[int],
        names: Sequence[str],
        units: Sequence[str],
        samps_per_frame: Sequence[int],
        comments: Sequence[str],
    ) -> None:
        self.id = source.stem
        self.source = source
        self.record_path = source.with_suffix("")
        self.comments = list(comments)
        self.channels = tuple(names)
        self.units = tuple(units)
        self.native_rates = tuple(frame_rate * s for s in samps_per_frame)
        #: rate of frames, which annotation sample numbers count
        self.frame_rate = float(frame_rate)
        self._n_frames = int(n_frames)
        self._indices = tuple(indices)
        self._spf = tuple(samps_per_frame)
        self._spf_max = max(samps_per_frame)
        self.fs = self.frame_rate * self._spf_max
        self.n_samples = self._n_frames * self._spf_max
        self._margin = _margin_frames(self._spf, self._spf_max)

    def __repr__(self) -> str:
        return (
            f"WfdbRecording(id={self.id!r}, fs={self.fs:g}, channels={len(self.channels)}, "
            f"n_samples={self.n_samples})"
        )

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        """Yield float32 blocks ``[C, n]`` (the last one shorter) in order, in physical
        units, NaN where the record has no sample. Each block of frames is read from disk
        only when the iteration reaches it."""
        if n < 1:
            raise ValueError(f"chunk size must be at least 1, got {n}")
        block_frames = -(-n // self._spf_max)  # enough whole frames for n samples
        pending: list[np.ndarray] = []
        held = 0
        for first in range(0, self._n_frames, block_frames):
            block = self._read_frames(first, min(first + block_frames, self._n_frames))
            pending.append(block)
            held += block.shape[1]
            # A block holds at least n samples, so this yields at most once or twice.
            while held >= n:
                joined = pending[0] if len(pending) == 1 else np.concatenate(pending, axis=1)
                yield joined[:, :n]
                rest = joined[:, n:]
                pending = [rest] if rest.shape[1] else []
                held = rest.shape[1]
        if held:
            yield pending[0] if len(pending) == 1 else np.concatenate(pending, axis=1)

    def _read_frames(self, first: int, stop: int) -> np.ndarray:
        """Frames ``[first, stop)`` of the selected channels as float32 ``[C, samples]`` at
        ``fs``, reading ``self._margin`` extra frames each side for the resampling filter."""
        lo = max(0, first - self._margin)
        hi = min(self._n_frames, stop + self._margin)
        # wfdb's handling of unsorted or repeated channel lists is not documented; ask for
        # each channel once, in file order, and pick the requested order out afterwards.
        wanted = sorted(set(self._indices))
        a, b = first * self._spf_max, stop * self._spf_max
        try:
            record = wfdb.rdrecord(
                str(self.record_path),
                sampfrom=lo,
                sampto=hi,
                channels=wanted,
                physical=True,
                smooth_frames=False,
            )
            by_index = dict(zip(wanted, record.e_p_signal, strict=True))
        except Exception as exc:  # wfdb reports bad data as ValueError, OSError, IndexError...
            raise RecordingError(f"{self.source}: cannot read samples {a}-{b} ({exc})") from exc
        out = np.empty((len(self._indices), b - a), dtype=np.float32)
        for row, (index, spf) in enumerate(zip(self._indices, self._spf, strict=True)):
            x = np.asarray(by_index[index])
            if len(x) != (hi - lo) * spf:
                raise RecordingError(
                    f"{self.source}: cannot read samples {a}-{b} (channel {index} gave "
                    f"{len(x)} samples where the header implies {(hi - lo) * spf})"
                )
            if spf != self._spf_max:
                x = _upsample(x, spf, self._spf_max)
            skip = (first - lo) * self._spf_max
            out[row] = x[skip : skip + (b - a)]
        return out


def _upsample(x: np.ndarray, spf: int, spf_max: int) -> np.ndarray:
    """A channel stored at ``spf`` samples per frame, brought to ``spf_max`` per frame."""
    from scipy.signal import resample_poly  # scipy.signal is slow to import; only if needed

    g = math.gcd(spf, spf_max)
    return resample_poly(x, spf_max // g, spf // g)


def _margin_frames(spf: Sequence[int], spf_max: int) -> int:
    """Frames to read beyond each side of a block so that upsampling a channel near the
    block's edge sees the same input as it would in the middle of a whole-record read."""
    margin = 0
    for s in spf:
        if s == spf_max:
            continue
        g = math.gcd(s, spf_max)
        up, down = spf_max // g, s // g
        # The filter spans half_taps upsampled samples = half_taps / up native samples.
        native = math.ceil(_RESAMPLE_HALF_TAPS * max(up, down) / up)
        margin = max(margin, math.ceil(native / s) + 1)  # +1: rounding in the alignment
    return margin


def open_wfdb(header: Path, channels: Sequence[int] | None = None) -> WfdbRecording:
    """Open the record whose header is ``header`` (``.hea``; the path without extension is
    accepted too), selecting ``channels`` by index (all by default).

    Reads headers only. Raises :class:`RecordingError` naming the header for a malformed
    header, a missing or too-short signal file, or a channel index out of range.
    """
    header = Path(header)
    record_path = header.with_suffix("") if header.suffix == ".hea" else header
    source = record_path.parent / f"{record_path.name}.hea"
    if not source.is_file():
        raise RecordingError(f"{source}: no such WFDB header file")
    _check_record_line(source)
    try:
        hdr = wfdb.rdheader(str(record_path))
    except Exception as exc:  # the parser fails with HeaderSyntaxError, IndexError, ...
        raise RecordingError(f"{source}: malformed WFDB header ({_describe(exc)})") from exc
    if not hdr.fs or hdr.fs <= 0:
        raise RecordingError(f"{source}: header gives no valid sampling frequency")
    if not hdr.n_sig:
        raise RecordingError(f"{source}: record has no signals")

    if isinstance(hdr, wfdb.MultiRecord):
        n_frames, names, units, spf = _multi_segment_layout(source, record_path, hdr)
    else:
        # wfdb's parser is lenient: a record line it cannot fully parse, or missing signal
        # lines, give a header with fewer signals than announced instead of an error.
        listed = len(hdr.sig_name or [])
        if listed != hdr.n_sig:
            raise RecordingError(
                f"{source}: malformed WFDB header (the record line announces {hdr.n_sig} "
                f"signals, {listed} signal lines follow)"
            )
        n_frames = _check_signal_files(source, source.parent, hdr)
        names, units, spf = list(hdr.sig_name), list(hdr.units), list(hdr.samps_per_frame)

    indices = select_channels(source, len(names), channels, f"record has {len(names)} channels")
    if n_frames == 0:
        raise RecordingError(f"{source}: record has no samples (a layout header?)")
    return WfdbRecording(
        source=source,
        frame_rate=float(hdr.fs),
        n_frames=n_frames,
        indices=indices,
        names=[names[i] for i in indices],
        units=[units[i] or "" for i in indices],
        samps_per_frame=[int(spf[i] or 1) for i in indices],
        comments=hdr.comments or [],
    )


_NUMBER = r"\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
#: A record line's frequency field: ``fs[/counter_freq[(base_counter)]]``.
_FREQUENCY = re.compile(rf"{_NUMBER}(?:/{_NUMBER}(?:\(-?{_NUMBER}\))?)?")


def _check_record_line(source: Path) -> None:
    """Refuse a record line whose fields do not parse. wfdb's parser substitutes defaults
    instead (``100 2 abc 650000`` reads as 250 Hz), which would train on a wrong rate."""
    try:
        lines = source.read_text(encoding="latin-1").splitlines()
    except OSError as exc:
        raise RecordingError(f"{source}: cannot read header ({exc.strerror})") from None
    record_line = next((ln.split() for ln in lines if ln.strip() and ln[0] != "#"), None)
    if not record_line:
        raise RecordingError(f"{source}: malformed WFDB header (no record line)")
    fields = dict(enumerate(record_line))
    problem = None
    if not fields.get(1, "").isdigit():
        problem = f"number of signals {fields.get(1, '(none)')!r}"
    elif 2 in fields and not (
        _FREQUENCY.fullmatch(fields[2]) and float(fields[2].split("/")[0]) > 0
    ):
        problem = f"sampling frequency {fields[2]!r}"
    elif 3 in fields and not fields[3].isdigit():
        problem = f"number of samples {fields[3]!r}"
    if problem:
        raise RecordingError(f"{source}: malformed WFDB header ({problem} on the record line)")
    if "/" not in record_line[0]:  # a multi-segment header lists segments, not signals
        _check_gains(source, [ln.split() for ln in lines if ln.strip() and ln[0] != "#"][1:])


#: A signal line's gain field: ``adcgain[(baseline)][/units]``.
_GAIN = re.compile(rf"-?{_NUMBER}(?:\(-?\d+\))?(?:/.*)?")


def _check_gains(source: Path, signal_lines: list[list[str]]) -> None:
    """Refuse a gain that does not parse: wfdb silently uses 200 per mV instead (``abc/mV``),
    which would scale the signal by a made-up factor."""
    for number, fields in enumerate(signal_lines):
        if len(fields) > 2 and not _GAIN.fullmatch(fields[2]):
            raise RecordingError(
                f"{source}: malformed WFDB header (gain {fields[2]!r} of signal {number})"
            )


def _multi_segment_layout(
    source: Path, record_path: Path, hdr: wfdb.MultiRecord
) -> tuple[int, list[str], list[str], list[int]]:
    """Check a multi-segment record's segment headers and files; return its length in
    frames and its signals' names, units and samples per frame."""
    if hdr.sig_len is None:
        raise RecordingError(f"{source}: multi-segment header gives no record length")
    segments = []
    for name in hdr.seg_name:
        if name == "~":  # a gap: no header, no file, read as NaN
            continue
        seg_header = source.parent / f"{name}.hea"
        if not seg_header.is_file():
            raise RecordingError(f"{source}: segment header {seg_header} is missing")
        try:
            segment = wfdb.rdheader(str(seg_header.with_suffix("")))
        except Exception as exc:
            raise RecordingError(
                f"{source}: segment header {seg_header} is malformed ({_describe(exc)})"
            ) from exc
        if segment.sig_len:  # a layout header has length 0 and no files
            _check_signal_files(source, source.parent, segment)
        segments.append(segment)
    if not segments:
        raise RecordingError(f"{source}: multi-segment record has no segments")
    # The names, order and rates that rdrecord will produce: take them from rdrecord itself
    # (one frame), so chunks and metadata cannot disagree. A variable layout's first
    # segment may be a gap, where rdrecord knows no units: those come from the layout
    # header (variable layout) or the first segment (fixed layout), which list the signals
    # in the same order.
    try:
        first = wfdb.rdrecord(str(record_path), sampfrom=0, sampto=1, smooth_frames=False)
    except Exception as exc:
        raise RecordingError(f"{source}: cannot read the first frame ({_describe(exc)})") from exc
    names = list(first.sig_name)
    spf = list(first.samps_per_frame)
    layout_units = list(segments[0].units or [])
    units = [
        u or (layout_units[i] if i < len(layout_units) else "")
        for i, u in enumerate(first.units or [None] * len(names))
    ]
    return int(hdr.sig_len), names, units, spf


def _check_signal_files(source: Path, directory: Path, hdr: wfdb.Record) -> int:
    """Check that every signal file of a single-segment header exists and holds at least
    the header's number of frames; return that number (inferred from the file size when
    the header omits it, as WFDB allows)."""
    files: dict[str, list[int]] = {}  # file name -> signal indices stored in it
    for i, name in enumerate(hdr.file_name or []):
        if name and name != "~":
            files.setdefault(name, []).append(i)
    frames_in_files: list[int] = []
    for name, signals in files.items():
        path = directory / name
        if not path.is_file():
            raise RecordingError(f"{source}: signal file {path} is missing")
        bits = _FORMAT_BITS.get(str(hdr.fmt[signals[0]]))
        if bits is None:  # compressed (FLAC): its size does not tell its length
            continue
        offset = hdr.byte_offset[signals[0]] if hdr.byte_offset else None
        bits_per_frame = bits * sum(int(hdr.samps_per_frame[i] or 1) for i in signals)
        payload = path.stat().st_size - (offset or 0)
        frames_in_files.append(max(0, math.floor(payload * 8 / bits_per_frame)))
        if hdr.sig_len is not None and frames_in_files[-1] < hdr.sig_len:
            raise RecordingError(
                f"{source}: signal file {path} is truncated: it holds "
                f"{frames_in_files[-1]} frames where the header says {hdr.sig_len}"
            )
    if hdr.sig_len is not None:
        return int(hdr.sig_len)
    if frames_in_files and len(frames_in_files) == len(files):
        return min(frames_in_files)
    raise RecordingError(f"{source}: header gives no record length")


def _describe(exc: BaseException) -> str:
    """An exception as ``Type: message`` (wfdb's messages alone can be cryptic)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def find_wfdb_records(directory: Path) -> list[Path]:
    """The ``.hea`` files of the records under ``directory`` (recursively), sorted.

    A multi-segment record's segment and layout headers are records in their own right to
    wfdb but only pieces of the record to a user, so those named by a multi-segment header
    in the same directory are left out: only top-level records are returned.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BiosigError(f"{directory}: not a directory")
    headers = sorted(p for p in directory.rglob("*.hea") if p.is_file())
    pieces: set[Path] = set()
    for header in headers:
        for segment in _segment_names(header):
            pieces.add(header.parent / f"{segment}.hea")
    return [h for h in headers if h not in pieces]


def _segment_names(header: Path) -> list[str]:
    """Segment names listed by a multi-segment header; [] for any other header.

    Parsed by hand rather than with wfdb: it only needs the record line and the segment
    lines, and a damaged header is better reported when the record is opened than here.
    """
    try:
        text = header.read_text(encoding="latin-1")
    except OSError:
        return []
    lines = [line.split() for line in text.splitlines()]
    lines = [fields for fields in lines if fields and not fields[0].startswith("#")]
    if not lines or "/" not in lines[0][0]:
        return []  # a single-segment record line reads "name n_sig ...", no "/n_seg"
    try:
        n_segments = int(lines[0][0].split("/", 1)[1])
    except ValueError:
        return []
    return [fields[0] for fields in lines[1 : 1 + n_segments] if fields[0] != "~"]
