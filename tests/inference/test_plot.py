"""The prediction plot: bounded-memory signal envelope, attention over time, class spans."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.image import imread

from biosig.inference.plot import (
    attention_trace,
    bin_edges,
    class_colour,
    ecg_grid,
    envelope,
    plot_prediction,
    prediction_figure,
    truth_spans,
)
from biosig.inference.stream import RecordingPrediction
from biosig.plugin.contract import LabelledInterval, Recording

CLASSES = ["normal", "artefact", "event"]


@dataclass
class FakeRecording:
    """A recording read lazily from ``source(start, stop) -> [C, stop - start]``.

    Records the largest block it was asked for and the largest it ever handed out, so a
    test can check the reader never held more than a bounded piece of the signal.
    """

    id: str
    fs: float
    channels: tuple[str, ...]
    n_samples: int
    source: Callable[[int, int], np.ndarray]
    max_asked: int = 0
    max_held: int = 0
    reads: int = 0
    stored: int | None = None  # samples the source really holds, when not n_samples

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        self.max_asked = max(self.max_asked, n)
        length = self.n_samples if self.stored is None else self.stored
        for start in range(0, length, n):
            block = self.source(start, min(start + n, length)).astype(np.float32)
            self.max_held = max(self.max_held, block.shape[1])
            self.reads += 1
            yield block


def array_recording(data: np.ndarray, fs: float = 100.0, rid: str = "rec") -> FakeRecording:
    channels = tuple(f"ch{i}" for i in range(data.shape[0]))
    return FakeRecording(rid, fs, channels, data.shape[1], lambda a, b: data[:, a:b])


def test_fake_recording_meets_the_protocol() -> None:
    assert isinstance(array_recording(np.zeros((1, 4))), Recording)


# --- envelope ---------------------------------------------------------------------------


def reference_envelope(data: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    edges = bin_edges(data.shape[1], n_bins)
    pairs = list(zip(edges[:-1], edges[1:], strict=True))
    lo = np.stack([np.nanmin(data[:, a:b], axis=1) for a, b in pairs], 1)
    hi = np.stack([np.nanmax(data[:, a:b], axis=1) for a, b in pairs], 1)
    return lo, hi


@pytest.mark.parametrize("block", [7, 64, 1000, 1 << 20])
def test_envelope_matches_numpy_for_any_block_size(block: int) -> None:
    # 1003 samples in 10 bins: bins of 100 or 101 samples, and blocks of 7 or 64 samples
    # that straddle bin edges everywhere; 1 << 20 reads it in one block.
    rng = np.random.default_rng(0)
    data = rng.normal(size=(3, 1003)).astype(np.float32)
    edges, lo, hi = envelope(array_recording(data), 10, block=block)
    assert edges[0] == 0 and edges[-1] == 1003 and len(edges) == 11
    assert np.all(np.diff(edges) >= 100)
    ref_lo, ref_hi = reference_envelope(data, 10)
    np.testing.assert_array_equal(lo, ref_lo)
    np.testing.assert_array_equal(hi, ref_hi)


def test_envelope_selects_channels_and_caps_bins_at_samples() -> None:
    data = np.arange(15, dtype=np.float32).reshape(3, 5)
    edges, lo, hi = envelope(array_recording(data), 100, channels=[2, 0], block=2)
    np.testing.assert_array_equal(edges, np.arange(6))  # 5 samples: 5 one-sample bins
    np.testing.assert_array_equal(lo, data[[2, 0]])
    np.testing.assert_array_equal(hi, data[[2, 0]])


def test_envelope_leaves_all_missing_bins_as_gaps() -> None:
    data = np.arange(40, dtype=np.float32).reshape(1, 40)
    data[0, 10:20] = np.nan  # exactly bin 1 of 4
    data[0, 25] = np.nan  # one missing sample in bin 2
    _, lo, hi = envelope(array_recording(data), 4, block=3)
    np.testing.assert_array_equal(lo[0], [0, np.nan, 20, 30])
    np.testing.assert_array_equal(hi[0], [9, np.nan, 29, 39])


def test_envelope_of_a_long_recording_reads_bounded_blocks() -> None:
    n = 10_000_000

    def ramp(a: int, b: int) -> np.ndarray:
        return np.arange(a, b, dtype=np.float64)[None, :] % 1000.0

    rec = FakeRecording("day", 250.0, ("ecg",), n, ramp)
    edges, lo, hi = envelope(rec, 2000)
    assert rec.max_asked <= 1_048_576 and rec.max_held <= 1_048_576
    assert rec.reads >= n // 1_048_576  # it really was read in pieces
    assert lo.shape == hi.shape == (1, 2000)
    # Each bin spans 5000 samples, so the sawtooth covers its whole 0..999 range in each.
    assert np.all(np.diff(edges) == 5000)
    np.testing.assert_array_equal(lo[0], 0.0)
    np.testing.assert_array_equal(hi[0], 999.0)


def test_envelope_stops_at_n_samples() -> None:
    # A reader that yields more than it announced: the excess is neither used nor read on.
    data = np.arange(40, dtype=np.float32).reshape(1, 40)
    rec = FakeRecording("x", 1.0, ("a",), 10, lambda a, b: data[:, a:b], stored=40)
    _, lo, hi = envelope(rec, 2, block=4)
    np.testing.assert_array_equal(lo[0], [0, 5])
    np.testing.assert_array_equal(hi[0], [4, 9])
    assert rec.reads == 3  # [0, 4), [4, 8), [8, 12): then it stops asking


# --- attention --------------------------------------------------------------------------


def first_half_rows(n_rows: int, width: int) -> np.ndarray:
    rows = np.zeros((n_rows, width))
    rows[:, : width // 2] = 1.0 / (width // 2)
    return rows


def test_attention_lies_where_the_weight_is() -> None:
    # Two windows of 100 samples, 10 model samples each (10 original samples per model
    # sample), all weight on the first half: density 0.2 / 10 = 0.02 per original sample.
    starts, ends = np.array([0, 100]), np.array([100, 200])
    trace = attention_trace(starts, ends, first_half_rows(2, 10), 200, 20)
    np.testing.assert_allclose(trace, np.tile(np.repeat([0.02, 0.0], 5), 2), atol=1e-12)


def test_attention_of_overlapping_windows_is_averaged() -> None:
    starts, ends = np.array([0, 50]), np.array([100, 150])
    rows = np.vstack([np.full(10, 0.1), first_half_rows(1, 10)])  # 0.01 and 0.02 densities
    trace = attention_trace(starts, ends, rows, 150, 15)
    expected = np.repeat([0.01, (0.01 + 0.02) / 2, 0.0], 5)
    np.testing.assert_allclose(trace, expected, atol=1e-12)


def test_attention_of_a_window_shorter_than_the_model_window_uses_its_valid_part() -> None:
    # A recording of 50 samples, 10 original samples per model sample, in a 10-sample model
    # window: its 5 valid entries cover [0, 50); the rest is padding (junk here, which must
    # be ignored).
    starts, ends = np.array([0]), np.array([50])
    row = np.array([[0.1, 0.1, 0.1, 0.1, 0.6, 9, 9, 9, 9, 9]])
    trace = attention_trace(starts, ends, row, 50, 5, valid=np.array([5]))
    np.testing.assert_allclose(trace, [0.01, 0.01, 0.01, 0.01, 0.06], atol=1e-12)
    # without `valid`, all 10 entries are taken to span the window
    squeezed = attention_trace(starts, ends, row, 50, 5)
    assert not np.allclose(squeezed, trace)


def test_attention_ignores_all_nan_rows_and_leaves_uncovered_bins_empty() -> None:
    starts, ends = np.array([0, 50, 200]), np.array([100, 150, 300])
    rows = np.vstack([np.full(10, 0.1), np.full(10, np.nan), np.full(10, 0.1)])
    trace = attention_trace(starts, ends, rows, 400, 40)
    np.testing.assert_allclose(trace[:10], 0.01, atol=1e-12)  # unchanged by the NaN row
    np.testing.assert_allclose(trace[20:30], 0.01, atol=1e-12)
    assert np.all(np.isnan(trace[10:20])) and np.all(np.isnan(trace[30:]))


def test_attention_mass_is_kept_when_bins_and_model_samples_do_not_align() -> None:
    # Non-overlapping windows of 97 samples (9.7 per model sample) on 10-sample bins: the
    # density integrated over covered samples still adds up to one per window.
    rng = np.random.default_rng(1)
    starts = np.arange(0, 970, 97)
    ends = starts + 97
    rows = rng.random((10, 10))
    rows /= rows.sum(1, keepdims=True)
    n_bins = 97
    trace = attention_trace(starts, ends, rows, 970, n_bins)
    widths = np.diff(bin_edges(970, n_bins))
    np.testing.assert_allclose(np.sum(trace * widths), 10.0)
    # A density, not a weight: the same attention at twice the rate halves its height.
    doubled = attention_trace(starts * 2, ends * 2, rows, 1940, n_bins)
    np.testing.assert_allclose(doubled, trace / 2)


# --- the figure and the file ------------------------------------------------------------


def sine(channels: int, n: int) -> np.ndarray:
    t = np.arange(n) / 100.0
    return np.stack([np.sin(2 * np.pi * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def prediction(
    rec: FakeRecording, starts, ends, labels, lengths: np.ndarray | None = None
) -> RecordingPrediction:
    """Windows of ``rec`` predicted as ``labels`` (probability 0.9 each)."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.full((len(labels), len(CLASSES)), 0.05, dtype=np.float32)
    probs[np.arange(len(labels)), labels] = 0.9
    return RecordingPrediction(rec, np.asarray(starts), np.asarray(ends), probs, lengths=lengths)


def assert_png(path: Path) -> np.ndarray:
    assert path.is_file()
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    return image


def test_plot_writes_a_png_with_classes_and_attention(tmp_path: Path) -> None:
    rec = array_recording(sine(2, 5000), rid="r01")
    starts = np.arange(0, 4500, 500)
    ends = np.minimum(starts + 1000, 5000)
    labels = np.array([0, 0, 2, 2, 2, 0, 0, 0, 0])
    attention = np.full((len(starts), 64), 1 / 64)
    path = tmp_path / "plots" / "r01.png"  # the parent does not exist yet
    pred = prediction(rec, starts, ends, labels)
    out = plot_prediction(path, pred, CLASSES, attention, width_px=800)
    assert out == path
    image = assert_png(path)
    assert image.shape[1] == 800

    fig = prediction_figure(pred, CLASSES, attention, width_px=800)
    top, second, bottom = fig.axes
    assert [top.get_ylabel(), second.get_ylabel(), bottom.get_ylabel()] == [
        "ch0",
        "ch1",
        "attention\n(× uniform)",
    ]
    # Uniform attention reads 1, on the dashed reference line.
    (uniform,) = [line for line in bottom.get_lines() if line.get_gid() == "uniform"]
    assert list(uniform.get_ydata()) == [1.0, 1.0]
    (area,) = bottom.collections
    heights = area.get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose(heights[heights > 0], 1.0)
    assert top.get_title(loc="left").startswith("r01 · 50 s")
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert legend == ["normal", "event"]  # only the classes that appear, in class order
    spans = [c for c in top.collections if isinstance(c, PolyCollection) and c.get_alpha() == 0.2]
    colours = sorted(tuple(c.get_facecolor()[0][:3]) for c in spans)
    assert colours == sorted(tuple(class_colour(k, 3)[:3]) for k in (0, 2))
    assert top.get_xlim() == pytest.approx((0, 50))


def test_plot_with_gaps_in_the_signal(tmp_path: Path) -> None:
    data = sine(1, 20_000)
    data[0, 3000:9000] = np.nan
    rec = array_recording(data)
    starts = np.array([0, 1000, 9000])
    ends = starts + 1000
    attention = np.full((3, 32), 1 / 32)
    attention[1] = np.nan  # a window without data
    assert_png(
        plot_prediction(
            tmp_path / "gap.png", prediction(rec, starts, ends, [1, 1, 0]), CLASSES, attention
        )
    )


def test_plot_with_no_windows(tmp_path: Path) -> None:
    rec = array_recording(sine(1, 300))  # fewer samples than pixels: drawn as a line
    empty = np.array([], dtype=np.int64)
    none = prediction(rec, empty, empty, empty)
    assert_png(plot_prediction(tmp_path / "none.png", none, CLASSES, np.zeros((0, 8))))
    fig = prediction_figure(none, CLASSES)
    assert fig.axes[0].get_legend() is None and len(fig.axes) == 1


def test_plot_draws_at_most_max_channels(tmp_path: Path) -> None:
    rec = array_recording(sine(6, 3000))
    starts, ends, labels = np.array([0]), np.array([3000]), np.array([1])
    pred = prediction(rec, starts, ends, labels)
    assert_png(plot_prediction(tmp_path / "six.png", pred, CLASSES))
    fig = prediction_figure(pred, CLASSES)
    assert [ax.get_ylabel() for ax in fig.axes] == ["ch0", "ch1", "ch2", "ch3"]
    assert "(+2 more channels)" in fig.axes[0].get_title(loc="left")


def test_plot_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "r.png"
    path.write_bytes(b"old")
    rec = array_recording(sine(1, 1000))
    plot_prediction(path, prediction(rec, [0], [1000], [0]), CLASSES)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_png(path)


# --- explanations relative to uniform, truth, units, ECG paper ------------------------------


def test_relative_trace_reads_one_for_an_even_spread_and_takes_magnitudes() -> None:
    starts, ends = np.array([0, 100]), np.array([100, 200])
    even = np.full((2, 10), 0.1)
    np.testing.assert_allclose(attention_trace(starts, ends, even, 200, 20, relative=True), 1.0)
    # Signed attributions: a window putting all its weight, negative, on its first tenth.
    signed = np.zeros((2, 10))
    signed[:, 0] = [-4.0, 2.0]
    trace = attention_trace(starts, ends, signed, 200, 20, relative=True)
    np.testing.assert_allclose(trace, np.tile([10.0] + [0.0] * 9, 2))
    # The scale does not change the picture: attention and gradients read alike.
    np.testing.assert_allclose(
        attention_trace(starts, ends, signed * 1e-3, 200, 20, relative=True), trace
    )


def test_truth_spans_resolve_overlaps_and_forecasts() -> None:
    intervals = [
        LabelledInterval("r", 0, 100, "N"),
        LabelledInterval("r", 80, 150, "V"),  # overlaps: wins from its start
        LabelledInterval("r", 400, 900, "N"),  # runs past the end: clipped
    ]
    assert truth_spans(intervals, 600) == [(0, 80, "N"), (80, 150, "V"), (400, 600, "N")]
    forecasts = [
        LabelledInterval("r", 0, 50, "up", label_end=60),
        LabelledInterval("r", 10, 60, "down", label_end=70),
    ]
    # Each forecast is drawn up to its decision, from the previous one's.
    assert truth_spans(forecasts, 100) == [(0, 50, "up"), (50, 60, "down")]


def test_plot_draws_the_truth_beside_the_prediction_and_units_on_the_axes() -> None:
    rec = array_recording(sine(2, 3000))
    pred = prediction(rec, [0, 1000, 2000], [1000, 2000, 3000], [0, 2, 2])
    truth = [LabelledInterval("rec", 0, 2000, "normal"), LabelledInterval("rec", 2000, 3000, "odd")]
    fig = prediction_figure(
        pred, CLASSES, np.full((3, 8), 1 / 8), units=("mV", ""), truth=truth, method="gradient"
    )
    first, second, track, explained = fig.axes
    assert [first.get_ylabel(), second.get_ylabel()] == ["ch0 (mV)", "ch1"]
    assert explained.get_ylabel() == "|gradient|\n(× uniform)"
    assert [t.get_text() for t in track.get_yticklabels()] == ["truth", "predicted"]
    lanes: dict[str, list] = {"truth": [], "predicted": []}
    for collection in track.collections:
        for path in collection.get_paths():
            xs = path.vertices[:, 0]
            colour = tuple(collection.get_facecolor()[0][:3])
            lanes[collection.get_gid()].append((xs.min(), xs.max(), colour))
    colour = [tuple(class_colour(k, 4)[:3]) for k in range(4)]
    assert sorted(lanes["truth"]) == [(0, 20, colour[0]), (20, 30, colour[3])]  # in seconds
    assert sorted(lanes["predicted"]) == [(0, 10, colour[0]), (10, 30, colour[2])]
    legend = [t.get_text() for t in first.get_legend().get_texts()]
    assert legend == ["normal", "event", "odd"]  # a class the model does not know, too


def grid_lines(ax, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The ECG grid's vertical line positions (s) and horizontal ones (the y unit)."""
    xs, ys = [], []
    for collection in ax.collections:
        if collection.get_gid() != f"ecg-{name}":
            continue
        for segment in collection.get_segments():
            (x0, y0), (x1, y1) = segment
            (xs if x0 == x1 else ys).append(x0 if x0 == x1 else y0)
    return np.array(sorted(xs)), np.array(sorted(ys))


def test_ecg_style_draws_ecg_paper_in_the_signal_unit() -> None:
    data = np.sin(2 * np.pi * np.arange(1000) / 250)[None].astype(np.float32)  # +-1 mV
    rec = array_recording(data, fs=250.0)  # 4 s
    pred = prediction(rec, [0], [1000], [0])
    fig = prediction_figure(pred, CLASSES, units=("mV",), style="ecg")
    ax = fig.axes[0]
    major_x, major_y = grid_lines(ax, "major")
    minor_x, minor_y = grid_lines(ax, "minor")
    np.testing.assert_allclose(np.diff(major_x), 0.2)
    assert major_x[0] == 0 and major_x[-1] == pytest.approx(4.0)
    np.testing.assert_allclose(np.diff(major_y), 0.5)
    np.testing.assert_allclose(major_y, [-1.0, -0.5, 0.0, 0.5, 1.0], atol=1e-9)
    # Minor lines every 0.04 s and 0.1 mV, those under a major line left out.
    assert len(minor_x) == 4 * len(major_x[:-1]) and len(minor_y) == 4 * 4
    np.testing.assert_allclose(np.unique(np.round(np.diff(minor_y), 9)), [0.1, 0.2])
    # The same paper in microvolts; none for a unit that is no voltage, nor without style.
    lines = ecg_grid((0, 4), (-1000, 1000), "uV", (1900, 150))
    np.testing.assert_allclose(np.diff(lines["major"][1]), 500)
    assert ecg_grid((0, 4), (-1, 1), "pA", (1900, 150)) is None
    assert grid_lines(prediction_figure(pred, CLASSES, units=("mV",)).axes[0], "major")[0].size == 0


def test_ecg_grid_leaves_out_lines_too_dense_to_see() -> None:
    # A day on 1900 pixels: 0.2 s lines would be 0.004 px apart.
    lines = ecg_grid((0, 86400), (-2, 2), "mV", (1900, 150))
    assert len(lines["major"][0]) == len(lines["minor"][0]) == 0
    assert len(lines["major"][1]) == 9  # the amplitude grid still fits
    # Ten seconds: major lines 38 px apart, minor ones 7.6 px: both drawn.
    ten = ecg_grid((0, 10), (-2, 2), "mV", (1900, 150))
    assert len(ten["major"][0]) == 51 and len(ten["minor"][0]) == 200
