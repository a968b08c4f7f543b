"""Draw one recording's predictions: its signal, windows coloured by class, and attention.

Behind ``biosig predict --plot``. A recording may be a day long (tens of millions of
samples), so the signal is read in bounded blocks and reduced on the fly to a min/max
envelope with at most one bin per pixel column; memory stays constant whatever the length.
Figures are built with :class:`matplotlib.figure.Figure` and drawn by the Agg canvas, never
through ``pyplot``: no global figure registry, no window, safe to call from worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..atomic import atomic_file
from ..plugin.contract import Recording
from .stream import RecordingPrediction

#: Samples per channel asked of ``Recording.chunks`` at once: large enough for fast numpy
#: reductions, small enough that a many-channel recording stays well under 100 MB a block.
BLOCK_SAMPLES = 1 << 18

#: Attention rows reduced at once; bounds the float64 copy the cumulative sums need.
_ATTENTION_ROWS = 4096

_DPI = 100


def bin_edges(n_samples: int, n_bins: int) -> np.ndarray:
    """Integer sample edges of ``min(n_bins, n_samples)`` near-equal bins over a recording.

    Capping the count at the number of samples keeps every bin at least one sample wide, so
    no bin is empty by construction.
    """
    n_samples = max(0, int(n_samples))
    n_bins = max(0, min(int(n_bins), n_samples))
    if n_bins == 0:
        return np.zeros(1, dtype=np.int64)
    return (np.arange(n_bins + 1, dtype=np.int64) * n_samples) // n_bins


def envelope(
    recording: Recording,
    n_bins: int,
    channels: Sequence[int] | None = None,
    block: int = BLOCK_SAMPLES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin minimum and maximum of a recording's signal, read in blocks of ``block``.

    Returns ``(edges, lo, hi)``: ``edges`` are the :func:`bin_edges` in original samples
    (``len = bins + 1``), ``lo`` and ``hi`` are float64 ``[len(channels), bins]``. Missing
    samples (NaN) are ignored; a bin holding nothing else is NaN, which plots as a gap.
    Samples beyond ``n_samples`` are not read; bins the recording never reached stay NaN.
    """
    n_samples = int(recording.n_samples)
    chosen = list(range(len(recording.channels))) if channels is None else list(channels)
    every = chosen == list(range(len(recording.channels)))
    edges = bin_edges(n_samples, n_bins)
    n_out = len(edges) - 1
    lo = np.full((len(chosen), n_out), np.nan)
    hi = np.full((len(chosen), n_out), np.nan)
    if n_out == 0 or not chosen:
        return edges, lo, hi
    offset = 0
    for chunk in recording.chunks(max(1, int(block))):
        width = min(chunk.shape[1], n_samples - offset)
        if width <= 0:
            break
        data = np.asarray(chunk[:, :width] if every else chunk[chosen, :width])
        first = int(np.searchsorted(edges, offset, side="right")) - 1
        last = int(np.searchsorted(edges, offset + width - 1, side="right")) - 1
        # A block rarely starts or ends on a bin edge: its first and last partial bins are
        # merged with what earlier and later blocks contribute, via fmin/fmax with NaN start.
        cuts = np.concatenate(([0], edges[first + 1 : last + 1] - offset))
        bins = slice(first, last + 1)
        lo[:, bins] = np.fmin(lo[:, bins], np.fmin.reduceat(data, cuts, axis=1))
        hi[:, bins] = np.fmax(hi[:, bins], np.fmax.reduceat(data, cuts, axis=1))
        offset += width
        if offset >= n_samples:
            break
    return edges, lo, hi


def attention_trace(
    starts: np.ndarray,
    ends: np.ndarray,
    attention: np.ndarray,
    n_samples: int,
    n_bins: int,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Attention density per original sample, averaged over the bins of :func:`bin_edges`.

    Row ``i`` of ``attention`` ``[n_windows, W]`` spreads over ``[starts[i], ends[i])``: its
    first ``valid[i]`` entries are the window's model samples (all ``W`` when ``valid`` is
    not given; fewer for a recording shorter than one window), later entries are ignored.
    Entry weight is divided by the original samples it covers, so heights compare across
    sampling rates. Where windows overlap they are averaged: a bin's value is the attention
    mass all windows put in it over the number of (window, sample) pairs covering it. Bins
    no window covers are NaN; all-NaN rows (windows without data) are ignored.
    """
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    ends = np.asarray(ends, dtype=np.int64).reshape(-1)
    attention = np.asarray(attention, dtype=np.float64)
    if attention.ndim != 2 or attention.shape[0] != len(starts) or len(ends) != len(starts):
        raise ValueError(
            f"attention must be [n_windows, W] with n_windows = {len(starts)}, "
            f"got shape {attention.shape} for {len(ends)} ends"
        )
    edges = bin_edges(n_samples, n_bins)
    n_edges = len(edges)
    if n_edges == 1 or len(starts) == 0 or attention.shape[1] == 0:
        return np.full(n_edges - 1, np.nan)
    lengths = ends - starts
    width = attention.shape[1]
    valid = np.clip(np.full(len(starts), width) if valid is None else valid, 1, width)
    valid = np.asarray(valid, dtype=np.int64)
    # Cumulative mass M and coverage C at every edge, summed over windows; a bin's mass
    # and coverage are then differences of neighbours, which keeps the work proportional to
    # windows + (edges inside windows) instead of windows x bins.
    mass_at = np.zeros(n_edges)
    cover_at = np.zeros(n_edges)
    keep = (lengths > 0) & ~np.all(np.isnan(attention), axis=1)
    for group in np.array_split(np.flatnonzero(keep), max(1, -(-keep.sum() // _ATTENTION_ROWS))):
        if not len(group):
            continue
        s, length, n_valid = starts[group], lengths[group], valid[group]
        rows = np.nan_to_num(attention[group], nan=0.0)
        rows[np.arange(width) >= n_valid[:, None]] = 0.0  # padding past the data: no weight
        cum = np.cumsum(rows, axis=1)
        # Windows that end at or before an edge count whole at that edge and every later one.
        k_end = np.searchsorted(edges, s + length, side="left")
        mass_at += np.cumsum(np.bincount(k_end, cum[:, -1], minlength=n_edges + 1))[:n_edges]
        cover_at += np.cumsum(np.bincount(k_end, length, minlength=n_edges + 1))[:n_edges]
        # Edges strictly inside a window take the part of its mass that lies before them.
        k_first = np.searchsorted(edges, s, side="right")
        counts = np.maximum(k_end - k_first, 0)
        if not counts.sum():
            continue
        win = np.repeat(np.arange(len(group)), counts)
        k = (
            np.repeat(k_first, counts)
            + np.arange(counts.sum())
            - np.repeat(np.cumsum(counts) - counts, counts)
        )
        inside = edges[k] - s[win]
        model_pos = inside * n_valid[win] / length[win]
        j = np.minimum(np.floor(model_pos).astype(np.int64), n_valid[win] - 1)
        before = cum[win, j] - rows[win, j] * (1.0 - (model_pos - j))
        mass_at += np.bincount(k, before, minlength=n_edges)
        cover_at += np.bincount(k, inside, minlength=n_edges)
    mass, cover = np.diff(mass_at), np.diff(cover_at)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cover > 0, mass / np.where(cover > 0, cover, 1), np.nan)


def class_colour(index: int, n_classes: int) -> tuple[float, float, float, float]:
    """Colour of class ``index``: fixed per index, so every plot of one model agrees."""
    cmap = colormaps["tab10" if n_classes <= 10 else "tab20"]
    return cmap(index % cmap.N)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3g} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def prediction_figure(
    prediction: RecordingPrediction,
    classes: Sequence[str],
    attention: np.ndarray | None = None,
    max_channels: int = 4,
    width_px: int = 2000,
) -> Figure:
    """Build the figure :func:`plot_prediction` writes (arguments as there), unsaved."""
    recording = prediction.recording
    n_channels = len(recording.channels)
    shown = list(range(min(n_channels, max(1, max_channels))))
    fs = float(recording.fs)
    n_samples = int(recording.n_samples)
    edges, lo, hi = envelope(recording, width_px, shown)
    seconds = edges / fs
    fig, axes = _figure(len(shown), attention is not None, width_px)
    spans = [(seg.start, seg.end, seg.label) for seg in prediction.segments()]
    present = sorted({label for _, _, label in spans})
    for ax in axes:
        _class_spans(ax, spans, present, fs, len(classes))
    one_per_bin = len(edges) - 1 == n_samples  # every bin a single sample: draw a line
    centres = seconds[:-1] if one_per_bin else (seconds[:-1] + seconds[1:]) / 2
    for row, channel in enumerate(shown):
        ax = axes[row]
        if one_per_bin:
            ax.plot(centres, lo[row], color="black", linewidth=0.7)
        else:
            # The edge line keeps flat stretches (min == max) visible as a thin stroke; some
            # transparency lets the class colours show through a dense envelope.
            ax.fill_between(centres, lo[row], hi[row], color="black", alpha=0.75, linewidth=0.5)
        ax.set_ylabel(str(recording.channels[channel]))
    if attention is not None:
        trace = attention_trace(
            prediction.starts, prediction.ends, attention, n_samples, width_px,
            prediction.lengths,
        )  # fmt: skip
        if len(trace):
            axes[-1].fill_between(centres, 0, trace, color="tab:purple", alpha=0.7, linewidth=0)
            axes[-1].set_ylim(bottom=0)
        axes[-1].set_ylabel("attention")
    axes[-1].set_xlim(0, max(n_samples / fs, 1 / fs))
    axes[-1].set_xlabel("time (s)")
    title = f"{recording.id} · {_duration(n_samples / fs)}"
    if n_channels > len(shown):
        title += f" (+{n_channels - len(shown)} more channels)"
    axes[0].set_title(title, loc="left")
    if present:
        _legend(axes[0], present, classes)
    return fig


def _figure(n_shown: int, with_attention: bool, width_px: int) -> tuple[Figure, np.ndarray]:
    """A figure of one row per shown channel (and one for attention), sharing time."""
    n_rows = max(1, n_shown) + with_attention
    ratios = [1.5] * max(1, n_shown) + ([1.1] if with_attention else [])
    fig = Figure(figsize=(width_px / _DPI, 0.95 + sum(ratios)), dpi=_DPI)  # inches
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, 1, sharex=True, squeeze=False, height_ratios=ratios)[:, 0]
    height = fig.get_figheight()  # margins in inches, so labels fit at any size
    width = fig.get_figwidth()
    fig.subplots_adjust(
        left=0.95 / width, right=1 - 0.15 / width, top=1 - 0.5 / height, bottom=0.45 / height
    )
    return fig, axes


def _class_spans(ax, spans: list, present: list[int], fs: float, n_classes: int) -> None:
    """The predicted segments as coloured bands behind the signal."""
    # One collection per class rather than one axvspan per span: a day of short windows
    # can mean tens of thousands of spans, which separate patches draw slowly.
    for label in present:
        boxes = [
            [(s / fs, 0), (s / fs, 1), (e / fs, 1), (e / fs, 0)] for s, e, k in spans if k == label
        ]
        ax.add_collection(
            PolyCollection(
                boxes,
                facecolors=[class_colour(label, n_classes)],
                edgecolors="none",
                alpha=0.2,
                transform=ax.get_xaxis_transform(),  # x in seconds, y the full axis
                zorder=0,
            ),
            autolim=False,
        )


def _legend(ax, present: list[int], classes: Sequence[str]) -> None:
    ax.legend(
        handles=[
            Patch(
                facecolor=class_colour(k, len(classes)),
                alpha=0.4,
                label=classes[k] if k < len(classes) else str(k),
            )
            for k in present
        ],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=len(present),
        frameon=False,
        fontsize="small",
    )


def plot_prediction(
    path: Path,
    prediction: RecordingPrediction,
    classes: Sequence[str],
    attention: np.ndarray | None = None,
    max_channels: int = 4,
    width_px: int = 2000,
) -> Path:
    """Write a PNG of one recording's signal with its windows coloured by predicted class.

    The windows of ``prediction`` are shaded by class as its merged segments
    (:meth:`~biosig.inference.stream.RecordingPrediction.segments`); ``classes`` names them. With
    ``attention`` (``[n_windows, W]``, one row per window of ``prediction``, see
    :func:`attention_trace`) a bottom panel shows attention over time. At most
    ``max_channels`` channels are drawn, the signal reduced to one min/max bin per pixel of
    ``width_px``, read lazily in bounded blocks. The file is written under a temporary name
    and renamed into place; parent directories are created. Returns ``path``.
    """
    path = Path(path)
    fig = prediction_figure(prediction, classes, attention, max_channels, width_px)
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=_DPI)
    return path
