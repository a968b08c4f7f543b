"""Windowing as index arithmetic over lazily read recordings.

A recording is read chunk by chunk, passed through its plugin's stateful preprocessor, and
cut into windows at planned start positions by :class:`Windower`, which holds only the
samples that a window still to be cut needs. Positions are kept in model-rate samples
internally and reported in the recording's original samples.

Missing samples: a preprocessor outputs NaN where a recording has a gap (a multi-segment
WFDB record's missing segment). A window holding any of them is skipped, not scored and not
trained on, and reported in ``Windows.skipped``; an infinite sample is damage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import BiosigError
from ..plugin.contract import (
    LabelledInterval,
    Plugin,
    Preprocessor,
    Recording,
    RecordingError,
    describe,
    reader_errors_as_damage,
)
from ..plugin.limits import check_claim

#: The longest window a model takes (2²⁰ samples, 17 minutes at 1 kHz): a checkpoint
#: claiming more is refused, and so is training one.
MAX_WINDOW = 1 << 20

#: Samples read from a recording per step; large enough to amortise I/O, small enough that
#: memory stays flat whatever the recording's length.
DEFAULT_CHUNK = 1 << 18


def window_starts(length: int, window: int, hop: int) -> np.ndarray:
    """Starts of windows of ``window`` samples every ``hop`` samples over ``length`` samples.

    The last window is aligned to the end when the hop grid leaves a tail uncovered, so
    every sample is seen; a recording shorter than one window gives a single window at 0
    (the model masks the padding).
    """
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got {window} and {hop}")
    if length <= window:
        return np.zeros(1 if length > 0 else 0, dtype=np.int64)
    starts = np.arange(0, length - window + 1, hop, dtype=np.int64)
    if starts[-1] + window < length:
        starts = np.append(starts, length - window)
    return starts


@dataclass
class Windows:
    """A block of cut windows: ``data [k, C, W]`` zero-padded past each ``lengths[i]``."""

    index: np.ndarray  # position of each window in the planned start array
    starts: np.ndarray  # in model-rate samples
    lengths: np.ndarray  # valid samples per window (== W except for short recordings)
    data: np.ndarray
    #: planned positions of windows dropped because they hold missing (NaN) samples
    skipped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def without_missing(self) -> Windows:
        """These windows less those holding a NaN, which move to ``skipped``."""
        missing = np.isnan(self.data).any(axis=(1, 2))
        if not missing.any():
            return self
        keep = ~missing
        return Windows(
            self.index[keep],
            self.starts[keep],
            self.lengths[keep],
            self.data[keep],
            np.concatenate([self.skipped, self.index[missing]]),
        )


class Windower:
    """Cuts windows at planned starts from a stream of ``[C, n]`` chunks.

    Starts need not be sorted or on a grid (events give windows centred on beats); windows
    are emitted as soon as the stream has reached their end, and the buffer keeps only
    samples from the earliest start not yet cut.
    """

    def __init__(self, starts: np.ndarray, window: int, n_channels: int) -> None:
        starts = np.asarray(starts, dtype=np.int64)
        self._order = np.argsort(starts, kind="stable")
        self._sorted = starts[self._order]
        self.window = window
        self._n_channels = n_channels
        self._next = 0  # index into the sorted starts of the first window not yet emitted
        self._buffer = np.zeros((n_channels, 0), dtype=np.float32)
        self._buffer_start = 0  # stream position of the buffer's first sample
        self._seen = 0  # samples received so far

    def push(self, chunk: np.ndarray) -> Windows | None:
        """Add the next chunk; return the windows that are now complete, if any."""
        if chunk.shape[0] != self._n_channels:
            raise ValueError(f"expected {self._n_channels} channels, got {chunk.shape[0]}")
        self._buffer = np.concatenate([self._buffer, chunk.astype(np.float32, copy=False)], 1)
        self._seen += chunk.shape[1]
        ready = np.searchsorted(self._sorted + self.window, self._seen, side="right")
        windows = self._cut(ready, final=False)
        self._trim()
        return windows

    def finish(self) -> Windows | None:
        """Emit the remaining windows, zero-padded where they run past the stream's end."""
        return self._cut(len(self._sorted), final=True)

    def _cut(self, stop: int, final: bool) -> Windows | None:
        if stop <= self._next:
            return None
        chosen = slice(self._next, stop)
        starts = self._sorted[chosen]
        offsets = starts - self._buffer_start
        if final:
            # At least one valid sample: a preprocessor that delivers a sample fewer than
            # planned must not leave an empty window, which the model cannot pool.
            lengths = np.clip(self._seen - starts, 1, self.window)
            pad = max(0, int(offsets.max()) + self.window - self._buffer.shape[1])
            buffer = np.pad(self._buffer, ((0, 0), (0, pad)))
        else:
            lengths = np.full(len(starts), self.window, dtype=np.int64)
            buffer = self._buffer
        view = np.lib.stride_tricks.sliding_window_view(buffer, self.window, axis=1)
        data = np.ascontiguousarray(view[:, offsets].transpose(1, 0, 2))
        self._next = stop
        return Windows(self._order[chosen], starts, lengths.astype(np.int64), data)

    def _trim(self) -> None:
        keep_from = self._sorted[self._next] if self._next < len(self._sorted) else self._seen
        drop = int(min(keep_from, self._seen) - self._buffer_start)
        if drop > 0:
            self._buffer = self._buffer[:, drop:]
            self._buffer_start += drop


#: The most a recording may be upsampled to reach the model rate: beyond it the rate in
#: the file (or ``--sample-rate``) is almost surely wrong, and honouring it would plan and
#: allocate that many times the recording's samples.
MAX_UPSAMPLING = 10_000


def model_length(recording: Recording, fs_out: float) -> int:
    """Length of ``recording`` once resampled to ``fs_out``; a :class:`RecordingError`
    when that would multiply its samples more than :data:`MAX_UPSAMPLING` times."""
    if fs_out / recording.fs > MAX_UPSAMPLING:
        raise RecordingError(
            f"{describe(recording)}: its rate, {recording.fs:g} Hz, is more than "
            f"{MAX_UPSAMPLING:,} times below the model's {fs_out:g} Hz; check the file's rate "
            "(or --sample-rate)"
        )
    return int(round(recording.n_samples * fs_out / recording.fs))


#: Bytes held per planned window while a recording is predicted: its start and end in
#: model and original samples, its valid length and a row of class scores.
PLAN_BYTES_PER_WINDOW = 64


def planned_length(recording: Recording, fs_out: float, hop: int) -> int:
    """:func:`model_length`, once the plan of windows every ``hop`` samples that it implies
    has been checked against the memory budget: a header claiming 10¹⁵ samples is damage
    naming the recording, not an allocation."""
    n_model = model_length(recording, fs_out)
    n_windows = n_model // hop + 1
    check_claim(
        describe(recording),
        f"the plan of its {n_windows:,} windows (sample count {recording.n_samples:,})",
        n_windows * PLAN_BYTES_PER_WINDOW,
    )
    return n_model


def plan_windows(
    recording: Recording, fs_out: float, window: int, hop: int
) -> tuple[int, np.ndarray]:
    """The recording's length at the model rate and the starts of its windows there."""
    n_model = planned_length(recording, fs_out, hop)
    return n_model, window_starts(n_model, window, hop)


def to_original(positions: np.ndarray, recording: Recording, fs_out: float) -> np.ndarray:
    """Model-rate sample positions expressed in the recording's original samples."""
    if fs_out == recording.fs:
        return np.asarray(positions, dtype=np.int64)
    return np.round(np.asarray(positions) * recording.fs / fs_out).astype(np.int64)


def to_model(positions: np.ndarray, recording: Recording, fs_out: float) -> np.ndarray:
    """Original sample positions expressed at the model rate."""
    if fs_out == recording.fs:
        return np.asarray(positions, dtype=np.int64)
    return np.round(np.asarray(positions) * fs_out / recording.fs).astype(np.int64)


#: A labelled series up to this many plugin windows long is seen whole, in one window, when
#: no window is given (see :func:`window_for_labels`).
WHOLE_SPAN_WINDOWS = 2


def window_for_labels(
    intervals: list[LabelledInterval],
    recordings: list[Recording],
    fs_out: float,
    plugin_window: int,
) -> int | None:
    """The training window sized to the labels, when none is given; ``None``: keep the
    plugin's ``plugin_window``.

    When every label is a whole recording (a class per series: a UCR set, a clip, a read)
    and none is longer than :data:`WHOLE_SPAN_WINDOWS` plugin windows, the window is the
    longest recording, so each series is one example seen whole: not padded into a window
    four times its length (a fifth of the model's input would be signal), nor cut into
    pieces that each miss part of what tells the classes apart. Shorter series are padded
    and masked to it. Labels on parts of recordings (events, rhythm episodes, forecasts)
    and longer series keep the plugin's window, whose length the plugin chose for the
    context its domain needs.
    """
    by_id = {r.id: r for r in recordings}
    lengths = []
    for iv in intervals:
        recording = by_id.get(iv.recording_id)
        whole = recording is not None and iv.start <= 0 and iv.stop >= recording.n_samples
        if iv.label_end is not None or not whole:
            return None
        lengths.append(int(to_model(np.int64(recording.n_samples), recording, fs_out)))
    if not lengths or not 1 <= max(lengths) <= WHOLE_SPAN_WINDOWS * plugin_window:
        return None
    return max(lengths)


def make_preprocessor(plugin: Plugin, recording: Recording, fs_out: float) -> Preprocessor:
    """The plugin's preprocessor for ``recording``, checked to deliver the model rate."""
    preprocess = plugin.preprocessor(recording, fs_out)
    if abs(preprocess.fs_out - fs_out) > 1e-6 * fs_out:
        raise BiosigError(
            f"plugin {plugin.name!r}: its preprocessor gives {preprocess.fs_out:g} Hz for "
            f"{describe(recording)}, but the model runs at {fs_out:g} Hz"
        )
    return preprocess


def _check_finite(chunk: np.ndarray, recording: Recording, offset: int) -> None:
    # NaN marks a missing sample (its windows are skipped); an infinite one is corrupt and
    # would turn every loss and probability it touches into NaN.
    if np.isinf(chunk).any():
        first = int(np.argwhere(np.isinf(chunk))[0, 1]) + offset
        raise RecordingError(
            f"{describe(recording)}: infinite sample near model-rate sample {first}"
        )


def _read_chunks(recording: Recording, size: int) -> Iterator[np.ndarray]:
    """``recording.chunks(size)``, with any error of the reader's own turned into damage
    naming the recording (a plugin's ``OSError`` mid-file skips that recording)."""
    with reader_errors_as_damage(f"{describe(recording)}: reading failed"):
        yield from recording.chunks(size)


def stream_windows(
    recording: Recording,
    preprocess: Preprocessor,
    starts: np.ndarray,
    window: int,
    chunk_size: int | None = None,
) -> Iterator[Windows]:
    """Read ``recording`` through its (fresh) preprocessor and cut windows at ``starts``
    (model-rate samples), block by block; windows holding missing samples come back in
    ``skipped`` instead."""
    windower = Windower(starts, window, len(recording.channels))
    seen = 0
    for chunk in _read_chunks(recording, chunk_size or DEFAULT_CHUNK):
        model_chunk = preprocess(chunk)
        _check_finite(model_chunk, recording, seen)
        seen += model_chunk.shape[1]
        out = windower.push(model_chunk)
        if out is not None:
            yield out.without_missing()
    tail = preprocess.flush()
    _check_finite(tail, recording, seen)
    if tail.shape[1]:
        out = windower.push(tail)
        if out is not None:
            yield out.without_missing()
    out = windower.finish()
    if out is not None:
        yield out.without_missing()
