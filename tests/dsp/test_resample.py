"""StreamingResampler: equal to scipy's resample_poly on the whole signal, whatever the chunking."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Iterable
from fractions import Fraction

import numpy as np
import pytest
from scipy.signal import resample_poly

from biosig.dsp.resample import StreamingResampler

#: (fs_in, fs_out) pairs covering up-, down- and non-integer resampling, and equal rates.
RATIOS = [
    (4000, 5000),
    (5000, 4000),
    (360, 250),
    (500, 360),
    (12000, 48000),
    (48000, 12000),
    (1, 1),
]
LENGTHS = [1, 7, 1000, 50_001]


def stream(resampler: StreamingResampler, x: np.ndarray, sizes: Iterable[int]) -> np.ndarray:
    """Feed ``x`` in pieces of the given sizes (the last piece takes the rest), then flush."""
    outs, start = [], 0
    for size in sizes:
        if start >= x.shape[1]:
            break
        outs.append(resampler(x[:, start : start + size]))
        start += size
    outs.append(resampler(x[:, start:]))
    outs.append(resampler.flush())
    for out in outs:
        assert out.dtype == np.float32 and out.shape[0] == x.shape[0]
    return np.concatenate(outs, axis=1)


def random_sizes(n: int, rng: np.random.Generator) -> list[int]:
    """Piece sizes summing to at least ``n``: a mix of empty, 1-sample and larger pieces."""
    sizes: list[int] = []
    while sum(sizes) < n:
        kind = rng.integers(3)
        sizes.append(0 if kind == 0 else 1 if kind == 1 else int(rng.integers(2, 5000)))
    return sizes


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("fs_in", "fs_out"), RATIOS)
def test_matches_resample_poly_in_any_chunking(fs_in, fs_out, channels, n):
    rng = np.random.default_rng([fs_in, fs_out, channels, n])
    x = rng.standard_normal((channels, n)).astype(np.float32)
    resampler = StreamingResampler(fs_in, fs_out, channels)
    up, down = resampler.up, resampler.down
    expected = resample_poly(x, up, down, axis=1)

    whole = stream(resampler, x, [n])
    assert whole.shape == (channels, math.ceil(n * up / down)) == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-5 * scale)

    # The same resampler again (flush reset it), then fresh ones, in other chunkings.
    chunkings = {
        "again": [n],
        "random": random_sizes(n, rng),
        "4096": [4096] * (n // 4096 + 1),
    }
    if n <= 1000:
        chunkings["single samples"] = [1] * n
    for name, sizes in chunkings.items():
        r = resampler if name == "again" else StreamingResampler(fs_in, fs_out, channels)
        np.testing.assert_allclose(stream(r, x, sizes), whole, rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    ("fs_in", "fs_out", "up", "down"),
    [
        (4000, 5000, 5, 4),
        (5000, 4000, 4, 5),
        (360, 250, 25, 36),
        (500, 360, 18, 25),
        (12000, 48000, 4, 1),
        (48000, 12000, 1, 4),
        (1, 1, 1, 1),
        (128.0, 100.0, 25, 32),
    ],
)
def test_rational_factors_and_output_rate(fs_in, fs_out, up, down):
    r = StreamingResampler(fs_in, fs_out, 2)
    assert (r.up, r.down) == (up, down)
    assert r.fs_out == pytest.approx(fs_out)


def test_output_rate_is_the_rate_actually_produced():
    r = StreamingResampler(44100, 48000.3, 1, max_denominator=100)
    assert Fraction(r.up, r.down) == Fraction(48000.3 / 44100).limit_denominator(100)
    assert r.fs_out == 44100 * r.up / r.down


@pytest.mark.parametrize(("fs_in", "fs_out"), [ratio for ratio in RATIOS if ratio != (1, 1)])
def test_sine_below_nyquist_keeps_amplitude_and_frequency(fs_in, fs_out):
    freq = 0.2 * min(fs_in, fs_out) / 2
    x = np.sin(2 * np.pi * freq * np.arange(20_000) / fs_in)[None].astype(np.float32)
    r = StreamingResampler(fs_in, fs_out, 1)
    y = stream(r, x, [3000] * 7)[0]
    # The resampled sine lies on the ideal one at the output times (no delay, no drift),
    # away from the zero-padded ends.
    ideal = np.sin(2 * np.pi * freq * np.arange(y.size) / r.fs_out)
    middle = slice(y.size // 10, -y.size // 10)
    assert np.abs(y[middle] - ideal[middle]).max() < 0.01
    amplitude = np.sqrt(2 * np.mean(y[middle] ** 2))
    assert amplitude == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize(
    ("fs_in", "fs_out"), [(5000, 4000), (360, 250), (500, 360), (48000, 12000)]
)
def test_tone_above_new_nyquist_is_attenuated(fs_in, fs_out):
    freq = 1.2 * fs_out / 2  # representable at fs_in, would alias at fs_out
    assert freq < fs_in / 2
    x = np.sin(2 * np.pi * freq * np.arange(20_000) / fs_in)[None].astype(np.float32)
    y = stream(StreamingResampler(fs_in, fs_out, 1), x, [20_000])[0]
    middle = y[y.size // 10 : -y.size // 10]
    assert np.sqrt(2 * np.mean(middle**2)) < 0.01  # below -40 dB


def test_equal_rates_pass_through_without_copy():
    r = StreamingResampler(250.0, 250.0, 2)
    assert (r.up, r.down, r.fs_out) == (1, 1, 250.0)
    x = np.random.default_rng(0).standard_normal((2, 100)).astype(np.float32)
    y = r(x)
    assert np.shares_memory(y, x) and y.dtype == np.float32
    assert r.flush().shape == (2, 0)
    y64 = r(x.astype(np.float64))
    assert y64.dtype == np.float32
    np.testing.assert_array_equal(y64, x)


@pytest.mark.parametrize(
    ("fs_in", "fs_out"), [(0, 100), (-1, 100), (100, 0), (100, -5), (float("nan"), 100)]
)
def test_invalid_rates_raise(fs_in, fs_out):
    with pytest.raises(ValueError):
        StreamingResampler(fs_in, fs_out, 1)


def test_wrong_chunk_shape_raises():
    r = StreamingResampler(4000, 5000, 3)
    with pytest.raises(ValueError):
        r(np.zeros((2, 10), dtype=np.float32))
    with pytest.raises(ValueError):
        r(np.zeros(10, dtype=np.float32))


def test_empty_stream_gives_nothing():
    r = StreamingResampler(4000, 5000, 2)
    assert r(np.zeros((2, 0), dtype=np.float32)).shape == (2, 0)
    assert r.flush().shape == (2, 0)


def test_long_chunk_uses_bounded_temporary_memory():
    n = 2_000_000
    x = np.random.default_rng(1).standard_normal((1, n)).astype(np.float32)
    r = StreamingResampler(4000, 5000, 1)
    tracemalloc.start()
    try:
        y = r(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The output alone is 2.5e6 float32 (10 MB); the working set on top stays a few MB.
    assert peak < 40e6
    assert y.shape[1] + r.flush().shape[1] == n * 5 // 4
