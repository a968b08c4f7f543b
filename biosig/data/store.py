"""Labelled windows, read and preprocessed once into a float32 store.

Labelled intervals become window start positions by index arithmetic; each labelled
recording is then streamed once through the same plugin path that prediction uses, and its
windows land in a ``[N, C, W]`` array (in memory when small, a memory-mapped file when not)
so that epochs never re-read or re-filter files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import BiosigError
from ..plugin.contract import (
    LabelledInterval,
    Plugin,
    Recording,
    RecordingError,
    describe,
    recording_times,
)
from .windows import (
    MAX_WINDOW,
    make_preprocessor,
    planned_length,
    stream_windows,
    to_model,
    to_original,
    window_starts,
)

log = logging.getLogger("biosig")

#: Stores larger than this are memory-mapped files rather than arrays in RAM.
IN_MEMORY_LIMIT_BYTES = 2 << 30


@dataclass
class ExampleStore:
    """Windows with their labels and provenance, aligned on the first axis."""

    x: np.ndarray  # [N, C, W] float32, zero past lengths[i]
    lengths: np.ndarray  # [N] valid samples per window
    y: np.ndarray  # [N] class index
    groups: np.ndarray  # [N] group key (str) for leakage-safe splits
    recording_ids: np.ndarray  # [N] str
    starts: np.ndarray  # [N] start in original samples
    classes: list[str]
    #: [N] first original sample after what each label depends on: the window's end, or a
    #: forecast's label end; time splits keep it clear of the validation side
    label_ends: np.ndarray
    #: [N] calendar times (seconds) of each window's first sample and of the last sample
    #: its label depends on, where recordings carry ``times`` (else NaN)
    start_times: np.ndarray | None = None
    end_times: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.y)
        if self.start_times is None:
            self.start_times = np.full(n, np.nan)
        if self.end_times is None:
            self.end_times = np.full(n, np.nan)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_channels(self) -> int:
        return int(self.x.shape[1])


def sort_classes(labels: set[str]) -> list[str]:
    """Class names in a stable order: numerically when all are integers."""
    try:
        return sorted(labels, key=int)
    except ValueError:
        return sorted(labels)


def check_classes(intervals: Sequence[LabelledInterval], source: Path | str) -> list[str]:
    """The classes of ``intervals``; fewer than two is an error naming the labels file."""
    classes = sort_classes({iv.label for iv in intervals})
    if not classes:
        raise BiosigError(f"{source}: labels give no labelled interval of the inputs")
    if len(classes) < 2:
        raise BiosigError(
            f"{source}: labels hold one class ({classes[0]!r}); a classifier needs at least two"
        )
    return classes


def plan_starts(
    intervals: Sequence[LabelledInterval],
    n_model: int,
    window: int,
    hop: int,
    recording: Recording,
    fs_out: float,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Window starts (model-rate samples), labels, and label ends (original samples) for
    one recording's intervals.

    An interval at least one window long is tiled with the hop; an event (a single sample,
    such as a beat) gets one window centred on it, moved inside the recording where it would
    overhang. A segment shorter than a window is centred on too when it fills at least half
    of the window (or the whole recording); a shorter one is left out, since the window
    would show mostly its neighbours under its label (a 3 s AF run in a 10 s window). A
    forecast (an interval with ``label_end``) labels the one window ending at its ``stop``,
    left out when the recording holds less than a window before it.

    A label end is the first original sample the label does not depend on: the window's end,
    or a forecast's ``label_end``.
    """
    starts: list[np.ndarray] = []
    labels: list[str] = []
    ends: list[np.ndarray] = []
    last_start = max(n_model - window, 0)
    for iv in intervals:
        a, b = (int(v) for v in to_model(np.array([iv.start, iv.stop]), recording, fs_out))
        if iv.label_end is not None:
            if recording.fs != fs_out:
                # resampling filters look ahead: the window's last samples would hold bars
                # after the decision bar
                raise BiosigError(
                    f"{describe(recording)}: forecast labels need the model at the "
                    f"recording's rate ({recording.fs:g}), not {fs_out:g}"
                )
            if window <= b <= n_model:
                starts.append(np.array([b - window], dtype=np.int64))
                labels.append(iv.label)
                ends.append(np.array([iv.label_end], dtype=np.int64))
            continue
        if iv.stop > iv.start:
            b = max(b, a + 1)  # a one-sample event must not round away at a lower model rate
        a, b = max(a, 0), min(b, n_model)
        if b <= a:
            continue
        if b - a >= window:
            s = a + window_starts(b - a, window, hop)
        elif iv.stop - iv.start > 1 and 2 * (b - a) < min(window, n_model):
            continue
        else:
            s = np.array([min(max((a + b) // 2 - window // 2, 0), last_start)], dtype=np.int64)
        starts.append(s)
        labels.extend([iv.label] * len(s))
        ends.append(to_original(np.minimum(s + window, n_model), recording, fs_out))
    if not starts:
        return np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.int64)
    return np.concatenate(starts), labels, np.concatenate(ends)


def build_examples(
    plugin: Plugin,
    recordings: Sequence[Recording],
    intervals: Sequence[LabelledInterval],
    classes: Sequence[str],
    window: int,
    hop: int,
    fs_out: float,
    store_dir: Path | None = None,
    progress: bool = True,
    on_damage: Callable[[RecordingError], None] | None = None,
) -> ExampleStore:
    """Read every labelled window of ``recordings`` once, at the model rate ``fs_out``, into
    an :class:`ExampleStore`.

    A recording whose reading raises :class:`RecordingError` is passed to ``on_damage``
    (which may re-raise) and its windows are left out; without ``on_damage`` it propagates.
    """
    if not 1 <= window <= MAX_WINDOW:  # a checkpoint of a longer one would not load
        raise BiosigError(f"window {window}: a model takes 1 to {MAX_WINDOW:,} samples")
    plans, n_channels = _plan_windows(recordings, intervals, window, hop, fs_out)
    total = sum(len(p.starts) for p in plans)
    columns = _Columns.empty(total, (total, n_channels, window), store_dir)
    class_index = {c: i for i, c in enumerate(classes)}
    # disable=None lets tqdm switch itself off when stderr is not a terminal (CI logs).
    bar = tqdm(
        total=total,
        desc="reading windows",
        unit="win",
        disable=None if progress else True,
        leave=False,
    )
    offset, gap_windows = 0, 0
    for plan in plans:
        sl = slice(offset, offset + len(plan.starts))
        columns.describe(sl, plan, plugin, class_index, fs_out)
        try:
            gap_windows += columns.read(offset, plan, plugin, window, fs_out, bar)
        except RecordingError as error:
            if on_damage is None:
                raise
            on_damage(error)
            columns.keep[sl] = False
        offset = sl.stop
    bar.close()
    if gap_windows:
        log.warning(
            "%d labelled windows left out: they hold missing samples "
            "(a gap, or the warm-up of trailing features)",
            gap_windows,
        )
    return columns.store(list(classes))


@dataclass
class _Plan:
    """One recording's labelled windows: starts at the model rate, labels, label ends."""

    recording: Recording
    starts: np.ndarray
    labels: list[str]
    label_ends: np.ndarray


def _plan_windows(
    recordings: Sequence[Recording],
    intervals: Sequence[LabelledInterval],
    window: int,
    hop: int,
    fs_out: float,
) -> tuple[list[_Plan], int]:
    """The windows of every labelled recording, from metadata only (preprocessors are made
    when a recording is read, since some, a nanopore read's median/MAD, read the signal
    when they are made); and the one channel count they share."""
    by_recording: dict[str, list[LabelledInterval]] = defaultdict(list)
    for iv in intervals:
        by_recording[iv.recording_id].append(iv)
    plans: list[_Plan] = []
    n_channels: int | None = None
    first_id = ""
    for rec in recordings:
        if rec.id not in by_recording:
            continue
        if n_channels is None:
            n_channels, first_id = len(rec.channels), rec.id
        elif len(rec.channels) != n_channels:
            raise BiosigError(
                f"{describe(rec)} has {len(rec.channels)} channels but recording {first_id} "
                f"has {n_channels}; one model takes one channel layout"
            )
        starts, labels, label_ends = plan_starts(
            by_recording[rec.id], planned_length(rec, fs_out, hop), window, hop, rec, fs_out
        )
        if len(starts):
            plans.append(_Plan(rec, starts, labels, label_ends))
    if not plans or n_channels is None:
        raise BiosigError("no labelled window could be cut from the inputs")
    return plans, n_channels


@dataclass
class _Columns:
    """The store's arrays while they are filled, and which windows to keep."""

    x: np.ndarray
    lengths: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    rec_ids: np.ndarray
    starts_orig: np.ndarray
    label_ends_orig: np.ndarray
    start_times: np.ndarray
    end_times: np.ndarray
    keep: np.ndarray

    @classmethod
    def empty(cls, total: int, shape: tuple[int, int, int], store_dir: Path | None) -> _Columns:
        return cls(
            _allocate(shape, store_dir),
            np.zeros(total, dtype=np.int64),
            np.zeros(total, dtype=np.int64),
            np.empty(total, dtype=object),
            np.empty(total, dtype=object),
            np.zeros(total, dtype=np.int64),
            np.zeros(total, dtype=np.int64),
            np.full(total, np.nan),
            np.full(total, np.nan),
            np.ones(total, dtype=bool),
        )

    def describe(
        self, sl: slice, plan: _Plan, plugin: Plugin, class_index: dict[str, int], fs_out: float
    ) -> None:
        """Labels, group, recording and positions of one recording's windows."""
        rec = plan.recording
        self.y[sl] = [class_index[label] for label in plan.labels]
        self.groups[sl] = plugin.group(rec)
        self.rec_ids[sl] = rec.id
        self.starts_orig[sl] = to_original(plan.starts, rec, fs_out)
        self.label_ends_orig[sl] = plan.label_ends
        times = recording_times(rec)
        if times is not None:
            last = rec.n_samples - 1
            self.start_times[sl] = times[np.clip(self.starts_orig[sl], 0, last)]
            self.end_times[sl] = times[np.clip(plan.label_ends - 1, 0, last)]

    def read(
        self, offset: int, plan: _Plan, plugin: Plugin, window: int, fs_out: float, bar
    ) -> int:
        """Read one recording's windows in; returns how many were left out for gaps."""
        rec, gaps = plan.recording, 0
        preprocess = make_preprocessor(plugin, rec, fs_out)
        for block in stream_windows(rec, preprocess, plan.starts, window):
            self.x[offset + block.index] = block.data
            self.lengths[offset + block.index] = block.lengths
            self.keep[offset + block.skipped] = False
            gaps += len(block.skipped)
            bar.update(len(block.index) + len(block.skipped))
        return gaps

    def store(self, classes: list[str]) -> ExampleStore:
        """The kept windows as an :class:`ExampleStore`."""
        keep = self.keep
        if not keep.any():
            raise BiosigError(
                "every labelled window was damaged or held missing samples; nothing to use"
            )
        # Rare: copies the kept windows (into memory, even from a memory-mapped store).
        pick = (lambda a: a) if keep.all() else (lambda a: a[keep])
        return ExampleStore(
            pick(self.x),
            pick(self.lengths),
            pick(self.y),
            pick(self.groups).astype(str),
            pick(self.rec_ids).astype(str),
            pick(self.starts_orig),
            classes,
            pick(self.label_ends_orig),
            pick(self.start_times),
            pick(self.end_times),
        )


def _allocate(shape: tuple[int, int, int], store_dir: Path | None) -> np.ndarray:
    nbytes = int(np.prod(shape)) * 4
    if nbytes <= IN_MEMORY_LIMIT_BYTES:
        return np.zeros(shape, dtype=np.float32)
    directory = Path(store_dir) if store_dir else Path(tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if nbytes > free:
        # Found before a byte is written, not as a full disk half-way through reading.
        n, channels, width = shape
        raise BiosigError(
            f"the training windows need {nbytes / 2**30:.1f} GiB ({n:,} windows of "
            f"{channels} × {width} samples), more than the {free / 2**30:.1f} GiB free in "
            f"{directory}; use a larger --hop, a shorter --window or fewer recordings"
        )
    fd, name = tempfile.mkstemp(dir=directory, prefix=".windows-", suffix=".npy")
    os.close(fd)
    log.info("window store of %.1f GiB memory-mapped at %s", nbytes / 2**30, name)
    store = np.lib.format.open_memmap(name, mode="w+", dtype=np.float32, shape=shape)
    # The mapping keeps the data alive; unlinking now means no multi-GB file outlives us.
    with contextlib.suppress(OSError):
        os.unlink(name)
    return store
