"""Windowing: start grids, the streaming Windower and chunk-consistent preprocessing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from biosig.data.windows import (
    Windower,
    Windows,
    model_length,
    stream_windows,
    to_model,
    to_original,
    window_for_labels,
    window_starts,
)
from biosig.plugin.contract import ArrayRecording, IdentityPreprocessor, LabelledInterval

# ---------------------------------------------------------------------------- helpers


def random_chunks(x: np.ndarray, rng: np.random.Generator, max_size: int = 40) -> list[np.ndarray]:
    """``x [C, n]`` cut into consecutive chunks of random sizes (zero-width ones included)."""
    chunks, pos = [], 0
    while pos < x.shape[1]:
        size = int(rng.integers(0, max_size + 1))
        chunks.append(x[:, pos : pos + size])
        pos += size
    return chunks


def cut(starts: np.ndarray, window: int, chunks: list[np.ndarray], n_channels: int):
    """Feed ``chunks`` to a Windower; return ``(data, lengths)`` reassembled by index."""
    windower = Windower(starts, window, n_channels)
    blocks = [windower.push(c) for c in chunks] + [windower.finish()]
    return reassemble([b for b in blocks if b is not None], starts, window, n_channels)


def reassemble(blocks: list[Windows], starts: np.ndarray, window: int, n_channels: int):
    data = np.full((len(starts), n_channels, window), np.nan, dtype=np.float32)
    lengths = np.full(len(starts), -1, dtype=np.int64)
    seen = np.zeros(len(starts), dtype=int)
    for block in blocks:
        assert block.data.shape == (len(block.index), n_channels, window)
        assert block.data.dtype == np.float32
        np.testing.assert_array_equal(block.starts, np.asarray(starts)[block.index])
        data[block.index] = block.data
        lengths[block.index] = block.lengths
        np.add.at(seen, block.index, 1)
    np.testing.assert_array_equal(seen, 1)  # every planned window exactly once
    return data, lengths


def sliced(x: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Direct slicing ``x[:, s:s+W]``, zero-padded past the end."""
    out = np.zeros((len(starts), x.shape[0], window), dtype=np.float32)
    for i, s in enumerate(starts):
        part = x[:, s : s + window]
        out[i, :, : part.shape[1]] = part
    return out


# ------------------------------------------------------------------------ window_starts


def test_window_starts_regular_grid() -> None:
    np.testing.assert_array_equal(window_starts(100, 20, 20), [0, 20, 40, 60, 80])
    np.testing.assert_array_equal(window_starts(100, 20, 10), np.arange(0, 81, 10))


def test_window_starts_tail_aligned_to_end() -> None:
    starts = window_starts(105, 20, 20)
    np.testing.assert_array_equal(starts, [0, 20, 40, 60, 80, 85])
    assert starts.dtype == np.int64


@pytest.mark.parametrize(
    ("length", "window", "hop"),
    [(1000, 64, 32), (1001, 64, 32), (997, 50, 50), (300, 100, 1), (129, 128, 128)],
)
def test_window_starts_cover_every_sample(length: int, window: int, hop: int) -> None:
    starts = window_starts(length, window, hop)
    covered = np.zeros(length, dtype=bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all()
    assert starts[0] == 0
    assert starts[-1] + window == length  # last window ends exactly at the end
    assert np.all(np.diff(starts) > 0)
    assert np.all(np.diff(starts) <= hop)


def test_window_starts_hop_longer_than_window_skips_but_ends_at_end() -> None:
    np.testing.assert_array_equal(window_starts(200, 30, 70), [0, 70, 140, 170])


@pytest.mark.parametrize("length", [1, 50, 127, 128])
def test_window_starts_short_recording_gives_one_window(length: int) -> None:
    np.testing.assert_array_equal(window_starts(length, 128, 64), [0])


def test_window_starts_empty_recording() -> None:
    starts = window_starts(0, 128, 64)
    assert starts.shape == (0,)
    assert starts.dtype == np.int64


@pytest.mark.parametrize(("window", "hop"), [(0, 10), (10, 0), (-5, 10), (10, -1)])
def test_window_starts_invalid_arguments(window: int, hop: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        window_starts(100, window, hop)


# ------------------------------------------------------------------------------ Windower


PLANS = {
    "grid": lambda n, w: window_starts(n, w, w // 2),
    "unsorted_overlapping": lambda n, w: np.random.default_rng(1).integers(0, n - w, 40),
    "event_centred": lambda n, w: np.clip(
        np.array([500, 12, 250, 251, 250, 900, 3, 640]) - w // 2, 0, n - w
    ),
}


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_windower_one_chunk_or_many_equals_slicing(plan: str) -> None:
    rng = np.random.default_rng(0)
    n, window, channels = 1000, 64, 3
    x = rng.normal(size=(channels, n)).astype(np.float32)
    starts = np.asarray(PLANS[plan](n, window), dtype=np.int64)

    whole, whole_len = cut(starts, window, [x], channels)
    many, many_len = cut(starts, window, random_chunks(x, rng), channels)
    tiny, tiny_len = cut(starts, window, [x[:, i : i + 1] for i in range(n)], channels)

    expected = sliced(x, starts, window)
    for data, lengths in ((whole, whole_len), (many, many_len), (tiny, tiny_len)):
        np.testing.assert_array_equal(data, expected)
        np.testing.assert_array_equal(lengths, window)


def test_windower_emits_windows_as_soon_as_complete() -> None:
    windower = Windower(np.array([30, 0, 10]), 20, 1)
    x = np.arange(100, dtype=np.float32)[None]
    assert windower.push(x[:, :19]) is None
    first = windower.push(x[:, 19:20])  # window at 0 ends at 20
    np.testing.assert_array_equal(first.index, [1])
    np.testing.assert_array_equal(first.data[0, 0], np.arange(20))
    second = windower.push(x[:, 20:55])  # windows at 10 and 30 end at 30 and 50
    np.testing.assert_array_equal(second.index, [2, 0])
    np.testing.assert_array_equal(second.starts, [10, 30])
    assert windower.finish() is None


def test_windower_pads_windows_past_the_end() -> None:
    rng = np.random.default_rng(2)
    n, window = 150, 64
    x = rng.normal(size=(2, n)).astype(np.float32)
    starts = np.array([120, 0, 100, 149, 86])
    for chunks in ([x], random_chunks(x, rng, 17)):
        data, lengths = cut(starts, window, chunks, 2)
        np.testing.assert_array_equal(lengths, np.minimum(n - starts, window))
        np.testing.assert_array_equal(data, sliced(x, starts, window))
        for i, length in enumerate(lengths):
            assert not data[i, :, length:].any()


def test_windower_short_stream_gives_padded_window() -> None:
    x = np.arange(1, 31, dtype=np.float32).reshape(1, 30)
    data, lengths = cut(np.array([0]), 64, [x[:, :7], x[:, 7:]], 1)
    np.testing.assert_array_equal(lengths, [30])
    np.testing.assert_array_equal(data[0, 0, :30], x[0])
    np.testing.assert_array_equal(data[0, 0, 30:], 0)


def test_windower_rejects_wrong_channel_count() -> None:
    windower = Windower(np.array([0]), 8, 2)
    with pytest.raises(ValueError, match="expected 2 channels, got 3"):
        windower.push(np.zeros((3, 10), dtype=np.float32))


def test_windower_buffer_stays_bounded() -> None:
    rng = np.random.default_rng(3)
    window, chunk, n = 100, 37, 200_000
    starts = np.sort(rng.choice(n - window, 25, replace=False))  # sparse plan
    windower = Windower(starts, window, 2)
    emitted = 0
    largest = 0
    for pos in range(0, n, chunk):
        block = rng.normal(size=(2, min(chunk, n - pos))).astype(np.float32)
        out = windower.push(block)
        emitted += 0 if out is None else len(out.index)
        largest = max(largest, windower._buffer.shape[1])
    assert windower.finish() is None
    assert emitted == len(starts)
    assert largest <= window + chunk


# ------------------------------------------------------------------ stream_windows


class RunningSum:
    """Causal cumulative sum per channel; carries the running total across chunks."""

    def __init__(self, fs: float, n_channels: int) -> None:
        self.fs_out = fs
        self._total = np.zeros((n_channels, 1), dtype=np.float64)

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        # Summing on from the carried total adds in the same order as one whole pass.
        out = np.cumsum(np.concatenate([self._total, chunk], axis=1), axis=1)[:, 1:]
        if out.shape[1]:
            self._total = out[:, -1:]
        return out.astype(np.float32)

    def flush(self) -> np.ndarray:
        return np.zeros((self._total.shape[0], 0), dtype=np.float32)


class DelayedDifference:
    """First difference ``x[t] - x[t-1]`` that holds back the last ``delay`` outputs until the
    next chunk (or ``flush``), like a filter with look-ahead."""

    def __init__(self, fs: float, n_channels: int, delay: int = 5) -> None:
        self.fs_out = fs
        self._previous = np.zeros((n_channels, 1), dtype=np.float32)
        self._held = np.zeros((n_channels, 0), dtype=np.float32)
        self._delay = delay

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        joined = np.concatenate([self._previous, chunk], axis=1)
        diff = np.diff(joined, axis=1)
        self._previous = joined[:, -1:]
        ready = np.concatenate([self._held, diff], axis=1)
        cut_at = max(ready.shape[1] - self._delay, 0)
        self._held = ready[:, cut_at:]
        return ready[:, :cut_at]

    def flush(self) -> np.ndarray:
        held, self._held = self._held, self._held[:, :0]
        return held


PREPROCESSORS = {
    "identity": (IdentityPreprocessor, lambda x: x),
    "running_sum": (RunningSum, lambda x: np.cumsum(x, axis=1, dtype=np.float64)),
    "delayed_difference": (
        DelayedDifference,
        lambda x: np.diff(np.concatenate([np.zeros_like(x[:, :1]), x], axis=1), axis=1),
    ),
}


def streamed(recording: ArrayRecording, make, starts: np.ndarray, window: int, chunk: int):
    preprocess = make(recording.fs, len(recording.channels))
    blocks = list(stream_windows(recording, preprocess, starts, window, chunk_size=chunk))
    return reassemble(blocks, starts, window, len(recording.channels))


@pytest.mark.parametrize("name", sorted(PREPROCESSORS))
def test_stream_windows_same_output_for_any_chunk_size(name: str) -> None:
    make, reference = PREPROCESSORS[name]
    rng = np.random.default_rng(4)
    n, window = 1234, 128
    x = rng.normal(size=(2, n)).astype(np.float32)
    recording = ArrayRecording("r", x, fs=100.0)
    starts = np.concatenate([window_starts(n, window, 50), [600, 17, 1200]])
    expected = sliced(reference(x).astype(np.float32), starts, window)

    results = [streamed(recording, make, starts, window, chunk) for chunk in (7, 100, n)]
    for data, lengths in results:
        np.testing.assert_allclose(data, expected, rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(lengths, np.minimum(n - starts, window))
    # Chunking must not change the result at all, not merely within tolerance.
    for data, _ in results[1:]:
        np.testing.assert_array_equal(data, results[0][0])


def test_stream_windows_yields_blocks_while_reading() -> None:
    """Windows come out as the stream reaches them, not all at the end."""
    n, window = 1000, 100
    recording = ArrayRecording("r", np.ones((1, n), dtype=np.float32), fs=1.0)
    starts = window_starts(n, window, window)
    blocks = list(stream_windows(recording, IdentityPreprocessor(1.0, 1), starts, window, 100))
    assert len(blocks) == 10
    assert [b.index.tolist() for b in blocks] == [[i] for i in range(10)]


# ------------------------------------------------------------------ rate conversion


@dataclass
class FakeRecording:
    id: str = "fake"
    fs: float = 500.0
    channels: tuple[str, ...] = ("a",)
    n_samples: int = 10_001

    def chunks(self, n: int) -> Iterator[np.ndarray]:  # pragma: no cover - never read
        raise AssertionError("positions only")


def test_model_length_at_resampled_rate() -> None:
    assert model_length(FakeRecording(n_samples=10_000), 250.0) == 5000
    assert model_length(FakeRecording(n_samples=10_002), 250.0) == 5001
    assert model_length(FakeRecording(n_samples=999), 500.0) == 999


def test_to_model_to_original_round_trip() -> None:
    rec = FakeRecording()
    model_positions = np.array([0, 1, 7, 128, 2500, 4999])
    original = to_original(model_positions, rec, 250.0)
    np.testing.assert_array_equal(original, model_positions * 2)
    assert original.dtype == np.int64
    np.testing.assert_array_equal(to_model(original, rec, 250.0), model_positions)
    # Original positions map to the nearest model sample.
    np.testing.assert_array_equal(to_model(np.array([0, 2, 4, 1000]), rec, 250.0), [0, 1, 2, 500])
    odd = np.array([1, 3, 999])
    assert np.all(np.abs(to_original(to_model(odd, rec, 250.0), rec, 250.0) - odd) <= 1)


def test_same_rate_positions_unchanged() -> None:
    rec = FakeRecording(fs=250.0)
    positions = np.array([0, 3, 17, 4096])
    np.testing.assert_array_equal(to_original(positions, rec, 250.0), positions)
    np.testing.assert_array_equal(to_model(positions, rec, 250.0), positions)


# ------------------------------------------------------------------ window from the labels


def _whole(recs: list[ArrayRecording]) -> list[LabelledInterval]:
    return [LabelledInterval(r.id, 0, r.n_samples, "c") for r in recs]


def _recording(rid: str, n: int, fs: float = 1.0) -> ArrayRecording:
    return ArrayRecording(rid, np.zeros((1, n), dtype=np.float32), fs)


def test_short_labelled_series_are_seen_whole_in_one_window() -> None:
    recs = [_recording("a", 150), _recording("b", 275), _recording("c", 90)]
    assert window_for_labels(_whole(recs), recs, 1.0, plugin_window=1024) == 275
    # up to twice the plugin's window a series is still taken whole
    assert window_for_labels(_whole(recs), recs, 1.0, plugin_window=200) == 275
    # at the model's rate: 8 kHz clips of 1 s for a 4 kHz model are 4000 samples
    clips = [_recording("d", 8000, fs=8000.0)]
    assert window_for_labels(_whole(clips), clips, 4000.0, plugin_window=8000) == 4000


def test_long_series_parts_of_recordings_and_forecasts_keep_the_plugin_window() -> None:
    recs = [_recording("a", 5000), _recording("b", 300)]
    assert window_for_labels(_whole(recs), recs, 1.0, plugin_window=1024) is None
    beats = [LabelledInterval("a", 100, 101, "N"), LabelledInterval("a", 400, 401, "V")]
    assert window_for_labels(beats, recs, 1.0, plugin_window=1024) is None
    # a short episode inside a recording keeps the context the plugin's window gives it
    episode = [LabelledInterval("b", 100, 200, "AF"), LabelledInterval("b", 0, 100, "N")]
    assert window_for_labels(episode, recs, 1.0, plugin_window=1024) is None
    forecast = [LabelledInterval("b", 0, 64, "up", label_end=69)]
    assert window_for_labels(forecast, recs, 1.0, plugin_window=1024) is None
