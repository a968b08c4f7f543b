"""Streaming IIR filters (biosig.dsp.filters) and preprocessor chains
(biosig.plugin.contract.Chain): the same output for any chunking, the reference scipy
output, the pass and stop bands of the filter designs, and resets between streams."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest
from scipy.signal import resample_poly, sosfilt, sosfilt_zi, sosfreqz

import biosig
from biosig import BiosigError, Chain, Preprocessor, StreamingFilter, StreamingResampler
from biosig.dsp.filters import band_pass_sos, notch_sos

FS = 360.0
#: Chunk sizes for the "many chunks" feeds: single samples, odd sizes, empty chunks and one
#: longer than the filters' transients; the rest of the signal follows as the last chunk.
UNEVEN = (0, 1, 7, 0, 1000, 1, 13)
TOLERANCE = 1e-6

# ---------------------------------------------------------------------------- helpers


def random_signal(n_channels: int, n: int, seed: int = 0) -> np.ndarray:
    """``[C, n]`` float32 noise on a different DC offset per channel (so the steady-state
    start, scaled by each channel's first sample, matters)."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-5, 5, size=(n_channels, 1))
    return (offsets + rng.standard_normal((n_channels, n))).astype(np.float32)


def split(x: np.ndarray, sizes: Sequence[int] = UNEVEN) -> list[np.ndarray]:
    """``x [C, n]`` cut into consecutive chunks of ``sizes``, then the rest as one chunk."""
    bounds = np.cumsum([0, *sizes])
    assert bounds[-1] < x.shape[1], "the signal must be longer than the listed chunks"
    return [x[:, a:b] for a, b in itertools.pairwise(bounds)] + [x[:, bounds[-1] :]]


def feed(stage: Preprocessor, chunks: Sequence[np.ndarray]) -> np.ndarray:
    """Every output of ``stage`` for ``chunks``, ``flush`` included, concatenated."""
    pieces = [stage(c) for c in chunks] + [stage.flush()]
    for piece in pieces:
        assert piece.dtype == np.float32
        assert piece.ndim == 2
    return np.concatenate(pieces, axis=1)


def reference(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """What StreamingFilter must give for the whole of ``x``: ``sosfilt`` along the samples,
    started from the steady state for each channel's first sample."""
    x64 = x.astype(np.float64)
    zi = sosfilt_zi(sos)[:, None, :] * x64[:, 0][None, :, None]  # [sections, C, 2]
    return sosfilt(sos, x64, axis=1, zi=zi)[0]


def sine(freq: float, seconds: float, fs: float = FS) -> np.ndarray:
    """A unit sine ``[1, n]``."""
    t = np.arange(int(seconds * fs)) / fs
    return np.sin(2 * np.pi * freq * t)[None, :]


def amplitude(y: np.ndarray) -> float:
    """Amplitude of a steady sine from its RMS (robust to where the peaks fall)."""
    return float(np.sqrt(2 * np.mean(np.square(y, dtype=np.float64))))


def steady_gain(sos: np.ndarray, freq: float, seconds: float, settle: float) -> float:
    """Output over input amplitude of a ``freq`` Hz sine, measured after ``settle`` s."""
    y = StreamingFilter(sos, 1, FS)(sine(freq, seconds))
    return amplitude(y[:, int(settle * FS) :])


def response(sos: np.ndarray, freqs: Sequence[float], fs: float) -> np.ndarray:
    """``|H(f)|`` of ``sos`` at ``freqs`` Hz."""
    _, h = sosfreqz(sos, worN=np.asarray(freqs, dtype=float), fs=fs)
    return np.abs(h)


# ---------------------------------------------------------------------------- StreamingFilter


@pytest.mark.parametrize("n_channels", [1, 3])
def test_one_chunk_equals_many_and_the_scipy_reference(n_channels: int) -> None:
    sos = band_pass_sos(FS, 0.5, 40)
    x = random_signal(n_channels, 5000)
    whole = feed(StreamingFilter(sos, n_channels, FS), [x])
    chunked = feed(StreamingFilter(sos, n_channels, FS), split(x))
    assert whole.shape == chunked.shape == x.shape
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(whole, reference(sos, x), rtol=0, atol=TOLERANCE)


def test_channels_are_filtered_independently() -> None:
    sos = band_pass_sos(FS, 0.5, 40)
    x = random_signal(3, 2000, seed=1)
    together = StreamingFilter(sos, 3, FS)(x)
    for c in range(3):
        alone = StreamingFilter(sos, 1, FS)(x[c : c + 1])
        np.testing.assert_allclose(together[c : c + 1], alone, rtol=0, atol=TOLERANCE)


def test_output_is_float32_at_the_input_rate() -> None:
    sos = band_pass_sos(FS, 0.5, 40)
    f = StreamingFilter(sos, 2, FS)
    assert f.fs_out == FS
    y = f(random_signal(2, 100).astype(np.float64))
    assert (y.dtype, y.shape) == (np.float32, (2, 100))


def test_empty_chunks_give_empty_float32_and_change_nothing() -> None:
    sos = band_pass_sos(FS, 0.5, 40)
    x = random_signal(2, 3000)
    f = StreamingFilter(sos, 2, FS)
    first = f(x[:, :0])  # before any sample: the steady state is not taken from it
    assert (first.dtype, first.shape) == (np.float32, (2, 0))
    pieces = [f(x[:, :500]), f(x[:, 500:500]), f(x[:, 500:])]
    assert pieces[1].shape == (2, 0)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), reference(sos, x), atol=TOLERANCE)


@pytest.mark.parametrize(
    ("low", "high", "dc_gain"), [(0.5, None, 0.0), (0.5, 40.0, 0.0), (None, 40.0, 1.0)]
)
def test_a_constant_offset_starts_in_steady_state(
    low: float | None, high: float | None, dc_gain: float
) -> None:
    """No ringing at the start: a constant input comes out at once as the DC gain times it,
    which a zero initial state would not give (a high-pass would start at the offset)."""
    sos = band_pass_sos(FS, low, high)
    x = np.full((2, 720), [[7.5], [-3.0]], dtype=np.float32)
    y = StreamingFilter(sos, 2, FS)(x)
    np.testing.assert_allclose(y, dc_gain * x, rtol=0, atol=1e-5)


def test_flush_returns_nothing_and_resets_the_state() -> None:
    sos = band_pass_sos(FS, 0.5, 40)
    a, b = random_signal(2, 2000, seed=2), random_signal(2, 1500, seed=3)
    f = StreamingFilter(sos, 2, FS)
    f(a)
    tail = f.flush()
    assert (tail.dtype, tail.shape) == (np.float32, (2, 0))
    second = feed(f, split(b))
    np.testing.assert_allclose(second, feed(StreamingFilter(sos, 2, FS), [b]), atol=TOLERANCE)
    np.testing.assert_allclose(second, reference(sos, b), atol=TOLERANCE)


def test_streaming_filter_is_lazily_exported() -> None:
    assert biosig.StreamingFilter is StreamingFilter
    assert (biosig.band_pass_sos, biosig.notch_sos) == (band_pass_sos, notch_sos)


# ---------------------------------------------------------------------------- band_pass_sos


def test_band_pass_passes_the_band_and_stops_drift_and_high_tones() -> None:
    sos = band_pass_sos(FS, 0.5, 40)
    passed = steady_gain(sos, 10.0, seconds=10, settle=5)
    drift = steady_gain(sos, 0.05, seconds=120, settle=40)  # 2 s transient at most
    tone = steady_gain(sos, 100.0, seconds=10, settle=5)
    assert passed == pytest.approx(1.0, abs=0.01)
    assert drift < 0.02  # below -34 dB
    assert tone < 0.15  # below -16 dB: a second-order edge 1.3 octaves away
    # the measured gains are the design's response
    expected = response(sos, [10.0, 0.05, 100.0], FS)
    np.testing.assert_allclose([passed, drift, tone], expected, rtol=0.02)


def test_band_edges_are_at_half_power() -> None:
    sos = band_pass_sos(FS, 0.5, 40)
    np.testing.assert_allclose(response(sos, [0.5, 40.0], FS), np.sqrt(0.5), atol=0.01)


def test_low_alone_is_a_high_pass_and_high_alone_a_low_pass() -> None:
    high_pass = band_pass_sos(FS, 0.5, None)
    dc, edge, top = response(high_pass, [0.0, 0.5, 170.0], FS)
    assert dc < 1e-6 and top == pytest.approx(1.0, abs=1e-3)
    assert edge == pytest.approx(np.sqrt(0.5), abs=0.01)
    low_pass = band_pass_sos(FS, None, 40)
    dc, edge, top = response(low_pass, [0.0, 40.0, 179.0], FS)
    assert dc == pytest.approx(1.0, abs=1e-6) and top < 0.01
    assert edge == pytest.approx(np.sqrt(0.5), abs=0.01)


def test_a_high_edge_at_or_above_nyquist_leaves_a_high_pass() -> None:
    for high in (30.0, 40.0):  # Nyquist of 60 Hz is 30 Hz
        sos = band_pass_sos(60, 0.5, high)
        assert sos is not None
        np.testing.assert_array_equal(sos, band_pass_sos(60, 0.5, None))
        dc, edge, near_nyquist = response(sos, [0.0, 0.5, 29.9], 60)
        assert dc < 1e-6
        assert edge == pytest.approx(np.sqrt(0.5), abs=0.01)
        assert near_nyquist == pytest.approx(1.0, abs=1e-3)  # a band-pass to 40 Hz cannot


def test_a_non_positive_low_edge_is_dropped() -> None:
    np.testing.assert_array_equal(band_pass_sos(FS, 0, 40), band_pass_sos(FS, None, 40))


@pytest.mark.parametrize(
    ("fs", "low", "high"), [(FS, None, None), (60.0, None, 40.0), (FS, 0.0, None)]
)
def test_no_band_left_means_no_filter(fs: float, low: float | None, high: float | None) -> None:
    assert band_pass_sos(fs, low, high) is None


@pytest.mark.parametrize(("low", "high", "band"), [(40, 0.5, "40-0.5"), (10, 10, "10-10")])
def test_an_empty_band_is_an_error(low: float, high: float, band: str) -> None:
    with pytest.raises(BiosigError, match=f"band {band} Hz is empty"):
        band_pass_sos(FS, low, high)


@pytest.mark.parametrize(
    ("fs", "low", "high"), [(60.0, 35.0, 40.0), (60.0, 30.0, None), (1 / 60, 0.5, None)]
)
def test_a_low_edge_at_or_above_nyquist_is_dropped(
    fs: float, low: float, high: float | None
) -> None:
    """Nothing lies above Nyquist to pass (a numerics record sampled once a minute has no
    0.5 Hz baseline to remove): no filter, where scipy's design would raise ValueError."""
    assert band_pass_sos(fs, low, high) is None


@pytest.mark.parametrize("order", [1, 2, 4])
def test_order_sets_the_roll_off(order: int) -> None:
    """A digital Butterworth low-pass: |H|^2 = 1 / (1 + (tan(pi f/fs) / tan(pi fc/fs))^2N)."""
    sos = band_pass_sos(FS, None, 40, order=order)
    freqs = np.array([20.0, 40.0, 80.0, 160.0])
    ratio = np.tan(np.pi * freqs / FS) / np.tan(np.pi * 40 / FS)
    expected = 1 / np.sqrt(1 + ratio ** (2 * order))
    np.testing.assert_allclose(response(sos, freqs, FS), expected, rtol=1e-6)


# ---------------------------------------------------------------------------- notch_sos


def test_notch_removes_mains_hum_and_passes_the_signal() -> None:
    sos = notch_sos(FS, 50)
    assert sos is not None
    hum = steady_gain(sos, 50.0, seconds=10, settle=5)
    passed = steady_gain(sos, 10.0, seconds=10, settle=5)
    assert 20 * np.log10(hum) < -30
    assert passed == pytest.approx(1.0, abs=0.01)
    assert response(sos, [40.0, 60.0], FS).min() > 0.9  # narrow: quality 30


def test_notch_of_a_mixture_leaves_the_signal() -> None:
    sos = notch_sos(FS, 60)
    clean = sine(10.0, 10)
    y = StreamingFilter(sos, 1, FS)(clean + 0.5 * sine(60.0, 10))
    settled = slice(int(5 * FS), None)
    assert amplitude(y[:, settled] - clean[:, settled]) < 0.01


@pytest.mark.parametrize(("fs", "freq"), [(100.0, 50.0), (100.0, 60.0), (FS, 0.0), (FS, -50.0)])
def test_notch_outside_zero_to_nyquist_is_none(fs: float, freq: float) -> None:
    assert notch_sos(fs, freq) is None


# ---------------------------------------------------------------------------- Chain


def filter_then_resample(n_channels: int) -> Chain:
    return Chain(
        StreamingFilter(band_pass_sos(FS, 0.5, 40), n_channels, FS),
        StreamingResampler(FS, 200, n_channels),
    )


@pytest.mark.parametrize("n_channels", [1, 2])
def test_chain_gives_the_same_output_for_any_chunking(n_channels: int) -> None:
    x = random_signal(n_channels, 4000, seed=4)
    whole = feed(filter_then_resample(n_channels), [x])
    chunked = feed(filter_then_resample(n_channels), split(x))
    assert whole.shape == (n_channels, int(np.ceil(4000 * 200 / FS)))
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=TOLERANCE)
    # ...and it is the filter's output resampled as scipy would, whole
    filtered = reference(band_pass_sos(FS, 0.5, 40), x).astype(np.float32)
    np.testing.assert_allclose(whole, resample_poly(filtered, 5, 9, axis=1), atol=1e-5)


def test_chain_flush_drains_each_stage_through_the_later_ones() -> None:
    """The first resampler's tail (held back until flush) must still be filtered and then
    resampled by the second; the second's own tail follows."""
    x = random_signal(2, 3000, seed=5)
    sos = band_pass_sos(200, None, 40)

    def chain() -> Chain:
        return Chain(
            StreamingResampler(FS, 200, 2),
            StreamingFilter(sos, 2, 200),
            StreamingResampler(200, 100, 2),
        )

    whole = feed(chain(), [x])
    np.testing.assert_allclose(feed(chain(), split(x)), whole, rtol=0, atol=TOLERANCE)
    step1 = resample_poly(x.astype(np.float64), 5, 9, axis=1).astype(np.float32)
    step2 = reference(sos, step1).astype(np.float32)
    expected = resample_poly(step2.astype(np.float64), 1, 2, axis=1)
    assert whole.shape == expected.shape
    np.testing.assert_allclose(whole, expected, atol=1e-5)


def test_chain_can_take_a_new_stream_after_flush() -> None:
    a, b = random_signal(1, 2500, seed=6), random_signal(1, 2000, seed=7)
    chain = filter_then_resample(1)
    feed(chain, [a])
    np.testing.assert_allclose(feed(chain, split(b)), feed(filter_then_resample(1), [b]), atol=1e-6)


def test_chain_rate_is_the_last_stage_rate() -> None:
    assert filter_then_resample(1).fs_out == 200
    low_pass = band_pass_sos(200, None, 40)
    assert Chain(StreamingResampler(FS, 200, 1), StreamingFilter(low_pass, 1, 200)).fs_out == 200


def test_chain_needs_a_stage() -> None:
    with pytest.raises(ValueError, match="at least one stage"):
        Chain()
