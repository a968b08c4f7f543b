"""Draw one recording's predictions: its signal, windows coloured by class, and attention.

Behind ``biosig predict --plot``. A recording may be a day long (tens of millions of
samples), so the signal is read in bounded blocks and reduced on the fly to a min/max
envelope with at most one bin per pixel column; memory stays constant whatever the length.
Figures are built with :class:`matplotlib.figure.Figure` and drawn by the Agg canvas, never
through ``pyplot``: no global figure registry, no window, safe to call from worker threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..atomic import atomic_file
from ..plugin.contract import LabelledInterval, Recording
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
    relative: bool = False,
) -> np.ndarray:
    """Attention density per original sample, averaged over the bins of :func:`bin_edges`.

    Row ``i`` of ``attention`` ``[n_windows, W]`` spreads over ``[starts[i], ends[i])``: its
    first ``valid[i]`` entries are the window's model samples (all ``W`` when ``valid`` is
    not given; fewer for a recording shorter than one window), later entries are ignored.
    Entry weight is divided by the original samples it covers, so heights compare across
    sampling rates. Where windows overlap they are averaged: a bin's value is the attention
    mass all windows put in it over the number of (window, sample) pairs covering it. Bins
    no window covers are NaN; all-NaN rows (windows without data) are ignored.

    With ``relative``, each row counts as the shares of its absolute values (so signed
    attributions such as integrated gradients read as their magnitude), scaled so that a
    window spreading its share evenly reads 1 everywhere: 2 is twice the uniform share, and
    attention and gradients are read on one scale. An all-zero row then reads 0.
    """
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    ends = np.asarray(ends, dtype=np.int64).reshape(-1)
    # Kept as given (a memory-mapped file stays on disk): rows are read group by group.
    attention = attention if isinstance(attention, np.ndarray) else np.asarray(attention)
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
    spanned = np.flatnonzero(lengths > 0)
    for group in np.array_split(spanned, max(1, -(-len(spanned) // _ATTENTION_ROWS))):
        if not len(group):
            continue
        rows = np.asarray(attention[group], dtype=np.float64)
        has_data = ~np.all(np.isnan(rows), axis=1)  # windows without data: ignored
        group, rows = group[has_data], rows[has_data]
        if not len(group):
            continue
        s, length, n_valid = starts[group], lengths[group], valid[group]
        rows = np.nan_to_num(rows, nan=0.0)
        rows[np.arange(width) >= n_valid[:, None]] = 0.0  # padding past the data: no weight
        if relative:
            rows = np.abs(rows)
            total = rows.sum(axis=1, keepdims=True)
            rows *= np.divide(length[:, None], total, out=np.zeros_like(total), where=total > 0)
        cum = np.cumsum(rows, axis=1)
        # Windows that end at or before an edge count whole at that edge and every later one.
        k_end = np.searchsorted(edges, s + length, side="left")
        mass_at += np.cumsum(np.bincount(k_end, cum[:, -1], minlength=n_edges + 1))[:n_edges]
        cover_at += np.cumsum(np.bincount(k_end, length, minlength=n_edges + 1))[:n_edges]
        _add_partial_windows(edges, s, length, n_valid, rows, cum, k_end, mass_at, cover_at)
    mass, cover = np.diff(mass_at), np.diff(cover_at)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cover > 0, mass / np.where(cover > 0, cover, 1), np.nan)


def _add_partial_windows(
    edges: np.ndarray,
    s: np.ndarray,
    length: np.ndarray,
    n_valid: np.ndarray,
    rows: np.ndarray,
    cum: np.ndarray,
    k_end: np.ndarray,
    mass_at: np.ndarray,
    cover_at: np.ndarray,
) -> None:
    """For :func:`attention_trace`: each edge strictly inside a window takes, into
    ``mass_at`` and ``cover_at``, the part of the window's mass and span before it."""
    n_edges = len(edges)
    k_first = np.searchsorted(edges, s, side="right")
    counts = np.maximum(k_end - k_first, 0)
    if not counts.sum():
        return
    win = np.repeat(np.arange(len(s)), counts)
    # the edges each window holds, window by window: k_first, k_first + 1, … < k_end
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    k = np.repeat(k_first, counts) + offsets
    inside = edges[k] - s[win]
    model_pos = inside * n_valid[win] / length[win]
    j = np.minimum(np.floor(model_pos).astype(np.int64), n_valid[win] - 1)
    before = cum[win, j] - rows[win, j] * (1.0 - (model_pos - j))
    mass_at += np.bincount(k, before, minlength=n_edges)
    cover_at += np.bincount(k, inside, minlength=n_edges)


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


def truth_spans(
    intervals: Iterable[LabelledInterval], n_samples: int
) -> list[tuple[int, int, str]]:
    """Labelled intervals as the truth track draws them: ``(start, stop, class)`` spans in
    original samples, in order, clipped to the recording, never overlapping.

    Where intervals overlap (events labelled by a window around each), the later one wins
    from its start. A forecast (``label_end`` set) labels the decision at its ``stop``, so it
    is drawn from the previous forecast's decision up to its own, as a step.
    """
    spans: list[tuple[int, int, str]] = []
    ordered = sorted(intervals, key=lambda iv: iv.stop if iv.label_end is not None else iv.start)
    last_decision: int | None = None
    for iv in ordered:
        start, stop = int(iv.start), int(iv.stop)
        if iv.label_end is not None:
            if last_decision is not None:
                start = max(start, min(last_decision, stop - 1))
            last_decision = stop
        start, stop = max(0, start), min(int(n_samples), stop)
        if stop <= start:
            continue
        while spans and spans[-1][1] > start:  # the later interval wins from its start
            s0, _, k0 = spans.pop()
            if s0 < start:
                spans.append((s0, start, k0))
        spans.append((start, stop, iv.label))
    return spans


#: Millivolts per unit of the units an ECG grid can be drawn in.
_MILLIVOLTS = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}

#: ECG paper: 1 mm squares of 0.04 s by 0.1 mV, 5 mm squares of 0.2 s by 0.5 mV.
ECG_MINOR = (0.04, 0.1)
ECG_MAJOR = (0.2, 0.5)

#: Closest grid lines are allowed to lie, in pixels; denser ones are left out (a minute of
#: ECG has 1500 minor lines, which would paint the panel pink).
_MIN_GRID_PX = 3.0


def ecg_grid(
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    unit: str,
    size_px: tuple[float, float],
) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """The lines of ECG paper over an axis spanning ``x_range`` seconds and ``y_range`` in
    ``unit`` (``mV``, ``uV``/``µV`` or ``V``), drawn ``size_px`` (width, height) pixels
    large: ``{"major": (x, y), "minor": (x, y)}``, positions in seconds and in ``unit``, the
    minor lines without those the major ones draw. Spacings are ECG paper's
    (:data:`ECG_MINOR`, :data:`ECG_MAJOR`); a set of lines closer than a few pixels is left
    empty on that axis. ``None`` when ``unit`` is no voltage."""
    per_mv = _MILLIVOLTS.get(unit.strip().lower())
    if per_mv is None:
        return None
    lines: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (dt, dv) in (("major", ECG_MAJOR), ("minor", ECG_MINOR)):
        lines[name] = (
            _grid_positions(x_range, dt, size_px[0]),
            _grid_positions(y_range, dv / per_mv, size_px[1]),
        )
    (major_x, major_y), (minor_x, minor_y) = lines["major"], lines["minor"]
    per_mv_minor = ECG_MINOR[1] / per_mv
    lines["minor"] = (
        _without(minor_x, major_x, ECG_MINOR[0]),
        _without(minor_y, major_y, per_mv_minor),
    )
    return lines


def _grid_positions(span: tuple[float, float], step: float, pixels: float) -> np.ndarray:
    """Multiples of ``step`` inside ``span``; none when they would lie too close."""
    lo, hi = span
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        return np.zeros(0)
    if step * pixels / (hi - lo) < _MIN_GRID_PX:
        return np.zeros(0)
    first, last = np.ceil(lo / step - 1e-9), np.floor(hi / step + 1e-9)
    return np.arange(first, last + 1) * step


def _without(lines: np.ndarray, drawn: np.ndarray, step: float) -> np.ndarray:
    """``lines`` (``step`` apart) less those ``drawn`` already holds, to rounding."""
    if not len(drawn) or not len(lines):
        return lines
    nearest = np.abs(lines[:, None] - drawn[None, :]).min(axis=1)
    return lines[nearest > step / 2]


def _draw_ecg_grid(ax, unit: str, lo: np.ndarray, hi: np.ndarray, x_range) -> None:
    """ECG paper behind one channel: y limits set to the signal's range, then the lines."""
    bottom, top = np.nanmin(lo, initial=np.inf), np.nanmax(hi, initial=-np.inf)
    if not (np.isfinite(bottom) and np.isfinite(top)):
        return
    margin = max(0.05 * (top - bottom), 1e-6)
    ax.set_ylim(bottom - margin, top + margin)
    box = ax.get_window_extent()
    lines = ecg_grid(x_range, ax.get_ylim(), unit, (box.width, box.height))
    if lines is None:
        return
    for name, colour, width in (("minor", "#f6c9c9", 0.4), ("major", "#e88b8b", 0.8)):
        xs, ys = lines[name]
        style = {"colors": colour, "linewidth": width, "zorder": 0.5, "gid": f"ecg-{name}"}
        if len(xs):
            ax.vlines(xs, 0, 1, transform=ax.get_xaxis_transform(), **style)
        if len(ys):
            ax.hlines(ys, 0, 1, transform=ax.get_yaxis_transform(), **style)


#: Labels of the explanation panel, by method.
_EXPLANATION_LABELS = {"attention": "attention", "gradient": "|gradient|"}


def prediction_figure(
    prediction: RecordingPrediction,
    classes: Sequence[str],
    explanation: np.ndarray | None = None,
    max_channels: int = 4,
    width_px: int = 2000,
    *,
    method: str = "attention",
    truth: Sequence[LabelledInterval] | None = None,
    units: Sequence[str] | None = None,
    style: str = "plain",
) -> Figure:
    """Build the figure :func:`plot_prediction` writes (arguments as there), unsaved."""
    recording = prediction.recording
    n_channels = len(recording.channels)
    shown = list(range(min(n_channels, max(1, max_channels))))
    fs = float(recording.fs)
    n_samples = int(recording.n_samples)
    edges, lo, hi = envelope(recording, width_px, shown)
    seconds = edges / fs
    fig, axes = _figure(len(shown), truth is not None, explanation is not None, width_px)
    spans = [(seg.start, seg.end, seg.label) for seg in prediction.segments()]
    names = list(classes)
    true_spans = []
    for start, stop, label in truth_spans(truth or (), n_samples):
        if label not in names:  # a class the model does not know: a colour of its own
            names.append(label)
        true_spans.append((start, stop, names.index(label)))
    predicted = sorted({label for _, _, label in spans})
    present = sorted(set(predicted) | {label for _, _, label in true_spans})
    n_signal = max(1, len(shown))
    for ax in axes[:n_signal]:
        _class_spans(ax, spans, predicted, fs, len(names))
    one_per_bin = len(edges) - 1 == n_samples  # every bin a single sample: draw a line
    centres = seconds[:-1] if one_per_bin else (seconds[:-1] + seconds[1:]) / 2
    x_range = (0.0, max(n_samples / fs, 1 / fs))
    for row, channel in enumerate(shown):
        ax = axes[row]
        if one_per_bin:
            ax.plot(centres, lo[row], color="black", linewidth=0.7)
        else:
            # The edge line keeps flat stretches (min == max) visible as a thin stroke; some
            # transparency lets the class colours show through a dense envelope.
            ax.fill_between(centres, lo[row], hi[row], color="black", alpha=0.75, linewidth=0.5)
        unit = str(units[channel]) if units is not None and channel < len(units) else ""
        name = str(recording.channels[channel])
        ax.set_ylabel(f"{name} ({unit})" if unit else name)
        if style == "ecg":
            ax.set_xlim(*x_range)
            _draw_ecg_grid(ax, unit, lo[row], hi[row], x_range)
    if truth is not None:
        _truth_track(axes[n_signal], spans, true_spans, fs, len(names))
    if explanation is not None:
        trace = attention_trace(
            prediction.starts, prediction.ends, explanation, n_samples, width_px,
            prediction.lengths, relative=True,
        )  # fmt: skip
        ax = axes[-1]
        if len(trace):
            ax.fill_between(centres, 0, trace, color="tab:purple", alpha=0.7, linewidth=0)
        top = float(np.nanmax(trace, initial=0.0)) if len(trace) else 0.0
        ax.set_ylim(0, max(1.5, 1.05 * top))  # the uniform line always in view
        ax.axhline(1.0, color="0.3", linestyle="--", linewidth=0.8, gid="uniform")
        ax.set_ylabel(f"{_EXPLANATION_LABELS.get(method, method)}\n(× uniform)")
    axes[-1].set_xlim(*x_range)
    axes[-1].set_xlabel("time (s)")
    title = f"{recording.id} · {_duration(n_samples / fs)}"
    if n_channels > len(shown):
        title += f" (+{n_channels - len(shown)} more channels)"
    axes[0].set_title(title, loc="left")
    if present:
        _legend(axes[0], present, names)
    return fig


def _truth_track(ax, predicted: list, true: list, fs: float, n_classes: int) -> None:
    """Two lanes of class colours: the predicted segments above, the truth below."""
    for lane, spans in ((1, predicted), (0, true)):
        for label in sorted({k for _, _, k in spans}):
            band = _class_band(spans, label, fs, n_classes, (lane, lane + 1))
            band.set(alpha=0.8, gid="predicted" if lane else "truth")
            ax.add_collection(band, autolim=False)
    ax.set_ylim(0, 2)
    ax.set_yticks([0.5, 1.5], ["truth", "predicted"])
    ax.axhline(1.0, color="white", linewidth=1.0)


def _figure(
    n_shown: int, with_truth: bool, with_explanation: bool, width_px: int
) -> tuple[Figure, np.ndarray]:
    """A figure of one row per shown channel, then the truth track and the explanation
    where drawn, sharing time."""
    ratios = [1.5] * max(1, n_shown) + ([0.45] if with_truth else [])
    ratios += [1.1] if with_explanation else []
    fig = Figure(figsize=(width_px / _DPI, 0.95 + sum(ratios)), dpi=_DPI)  # inches
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(ratios), 1, sharex=True, squeeze=False, height_ratios=ratios)[:, 0]
    height = fig.get_figheight()  # margins in inches, so labels fit at any size
    width = fig.get_figwidth()
    fig.subplots_adjust(
        left=0.95 / width, right=1 - 0.15 / width, top=1 - 0.5 / height, bottom=0.45 / height
    )
    return fig, axes


def _class_spans(ax, spans: list, present: list[int], fs: float, n_classes: int) -> None:
    """The predicted segments as coloured bands behind the signal."""
    for label in present:
        band = _class_band(spans, label, fs, n_classes, (0, 1))
        # x in seconds, y the full axis
        band.set(alpha=0.2, transform=ax.get_xaxis_transform(), zorder=0)
        ax.add_collection(band, autolim=False)


def _class_band(
    spans: list, label: int, fs: float, n_classes: int, rows: tuple[float, float]
) -> PolyCollection:
    """One class's ``(start, end, class)`` spans (samples at ``fs``) as boxes from
    ``rows[0]`` to ``rows[1]`` in its colour: one collection per class rather than one
    patch per span, which a day of short windows makes slow to draw."""
    bottom, top = rows
    boxes = [
        [(s / fs, bottom), (s / fs, top), (e / fs, top), (e / fs, bottom)]
        for s, e, k in spans
        if k == label
    ]
    return PolyCollection(boxes, facecolors=[class_colour(label, n_classes)], edgecolors="none")


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
    explanation: np.ndarray | None = None,
    max_channels: int = 4,
    width_px: int = 2000,
    *,
    method: str = "attention",
    truth: Sequence[LabelledInterval] | None = None,
    units: Sequence[str] | None = None,
    style: str = "plain",
) -> Path:
    """Write a PNG of one recording's signal with its windows coloured by predicted class.

    The windows of ``prediction`` are shaded by class as its merged segments
    (:meth:`~biosig.inference.stream.RecordingPrediction.segments`); ``classes`` names them.
    With ``truth`` (the recording's labelled intervals, as ``Plugin.labels`` gives them) a
    track under the signal shows the predicted classes above the true ones (see
    :func:`truth_spans`). With ``explanation`` (``[n_windows, W]``, one row per window of
    ``prediction``: attention, or integrated gradients when ``method`` is ``"gradient"``) a
    bottom panel shows it over time relative to uniform (see :func:`attention_trace`'s
    ``relative``): 1, the dashed line, is a window spreading its weight evenly. ``units``
    (one per channel, "" where unknown) label the y axes; ``style="ecg"`` draws each
    channel on ECG paper's grid (see :func:`ecg_grid`). At most ``max_channels`` channels
    are drawn, the signal reduced to one min/max bin per pixel of ``width_px``, read lazily
    in bounded blocks. The file is written under a temporary name and renamed into place;
    parent directories are created. Returns ``path``.
    """
    path = Path(path)
    fig = prediction_figure(
        prediction, classes, explanation, max_channels, width_px,
        method=method, truth=truth, units=units, style=style,
    )  # fmt: skip
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=_DPI)
    return path
